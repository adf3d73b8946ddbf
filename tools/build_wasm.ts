/**
 * Builds `lib/compute/cpu/kernels.wasm` from its generator, `lib/compute/cpu/kernels_wat.ts`.
 *
 * ```sh
 * deno task build:wasm            # writes the binary
 * deno run -A tools/build_wasm.ts --check   # exits 1 if the committed binary is stale
 * ```
 *
 * @module
 */

import wabtInit from "wabt";
import { kernelsWat } from "../lib/compute/cpu/kernels_wat.ts";

/** Where the committed binary lives. */
export const WASM_PATH = new URL("../lib/compute/cpu/kernels.wasm", import.meta.url);

/**
 * Compiles the kernels' WebAssembly text.
 *
 * @returns The module's bytes.
 */
export async function buildKernels(): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const module = wabt.parseWat("kernels.wat", kernelsWat(), { simd: true, relaxed_simd: true });
  try {
    module.validate();
    return new Uint8Array(module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

if (import.meta.main) {
  const bytes = await buildKernels();
  if (Deno.args.includes("--check")) {
    const committed = await Deno.readFile(WASM_PATH);
    const same = committed.length === bytes.length && committed.every((b, i) => b === bytes[i]);
    if (!same) {
      console.error("lib/compute/cpu/kernels.wasm is stale: run `deno task build:wasm`");
      Deno.exit(1);
    }
  } else {
    await Deno.writeFile(WASM_PATH, bytes);
    console.log(`Wrote ${bytes.length} bytes to lib/compute/cpu/kernels.wasm`);
  }
}
