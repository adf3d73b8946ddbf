import { deepStrictEqual, ok } from "node:assert/strict";
import { smoke } from "../tools/browser_smoke.ts";
import {
  findChromium,
  mismatches,
  runInChromium,
  WEBGPU_FLAGS,
} from "../tools/run_browser_smoke.ts";

const chromium = await findChromium();
if (chromium === null) {
  console.warn(
    "browser_smoke_test.ts: no Chromium (set CHROMIUM or apt-get install chromium); skipped",
  );
}

Deno.test({
  name: "the core trains in headless Chromium with the bits it has in Deno",
  ignore: chromium === null,
  async fn() {
    const { result } = await runInChromium({ chromium: chromium!, flags: WEBGPU_FLAGS });
    const deno = await smoke();
    deepStrictEqual(mismatches(result, deno), []);
    // Independent of the Deno run: the Wasm engine gives the reference engine's bits there.
    deepStrictEqual(result.wasmParams, result.referenceParams);
    deepStrictEqual(result.wgsl.kernels, 7);
    if (result.webgpu !== null) ok(result.webgpu.maxAbsDiff < 1e-5, `${result.webgpu.maxAbsDiff}`);
  },
});

Deno.test("mismatches() names the fields that differ, not the WebGPU ones", async () => {
  const deno = await smoke();
  deepStrictEqual(mismatches(deno, { ...deno, webgpu: null, webgpuAdapter: "other" }), []);
  deepStrictEqual(
    mismatches({ ...deno, wasmParams: "0", wasmTrain: { ...deno.wasmTrain, steps: 0 } }, deno),
    ["wasmParams", "wasmTrain"],
  );
});
