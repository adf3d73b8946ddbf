import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { KERNELS } from "../../lib/compute/webgpu/runtime.ts";
import * as shaders from "../../lib/compute/webgpu/shaders.ts";
import {
  readShaders,
  shaderConstant,
  SHADERS_DIR,
  SHADERS_MODULE_PATH,
  shadersModule,
} from "../../tools/build_shaders.ts";

Deno.test("the committed shaders.ts equals a fresh build of shaders/*.wgsl", async () => {
  strictEqual(
    await Deno.readTextFile(SHADERS_MODULE_PATH),
    await shadersModule(await readShaders()),
    "run `deno task build:shaders`",
  );
});

Deno.test("KERNELS holds the text of each shaders/*.wgsl file, by file name", async () => {
  const files: Record<string, string> = {};
  for await (const entry of Deno.readDir(SHADERS_DIR)) {
    if (!entry.name.endsWith(".wgsl")) continue;
    files[entry.name.slice(0, -5)] = await Deno.readTextFile(new URL(entry.name, SHADERS_DIR));
  }
  deepStrictEqual({ ...KERNELS }, files);
  deepStrictEqual(
    Object.keys(shaders).sort(),
    Object.keys(files).map((name) => `${name.toUpperCase()}_WGSL`).sort(),
  );
});

Deno.test("shadersModule() keeps backticks, backslashes and ${ of a source", async () => {
  const source = "// `a` \\ ${b} $c {d}\nfn main() {}\n";
  const text = await shadersModule([{ kernel: "odd_1", source }]);
  const url = `data:text/typescript;base64,${btoa(text)}`;
  const module = await import(url);
  deepStrictEqual({ ...module }, { ODD_1_WGSL: source });
});

Deno.test("shaderConstant() names kernels and rejects names that are not lower snake case", () => {
  strictEqual(shaderConstant("softmax_xent"), "SOFTMAX_XENT_WGSL");
  for (const name of ["Matmul", "soft-max", "_relu", "relu_", "a__b", ""]) {
    throws(() => shaderConstant(name), {
      name: "TypeError",
      message: `Kernel file names must be lower snake case, got ${name}.wgsl`,
    });
  }
});
