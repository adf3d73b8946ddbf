/**
 * The walls between the rooms of `lib/` (docs/ARCHITECTURE.md), checked over the module graph
 * that `deno info --json` reports for every entry point and every module of `lib/`.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const root = fromFileUrl(new URL("../", import.meta.url));

/** Every `.ts` file below `dir`, relative to the repository root. */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(`${root}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** Local import edges `[from, to]` (repository-relative paths) of the graph of `entries`. */
async function edges(entries: string[]): Promise<[string, string][]> {
  // `deno info` takes one root: a probe module beside deno.json imports every entry.
  const probe = await Deno.makeTempFile({ dir: root, prefix: ".walls_", suffix: ".ts" });
  let output: Deno.CommandOutput;
  try {
    await Deno.writeTextFile(probe, entries.map((e) => `import "./${e}";\n`).join(""));
    output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", probe],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(probe);
  }
  ok(output.success, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
    }[];
  };
  const local = (specifier: string) =>
    specifier.startsWith("file:") ? relative(root, fromFileUrl(specifier)) : null;
  const out: [string, string][] = [];
  for (const module of graph.modules) {
    const from = local(module.specifier);
    if (from === null) continue;
    for (const dependency of module.dependencies ?? []) {
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        const to = target === undefined ? null : local(target);
        if (to !== null) out.push([from, to]);
      }
    }
  }
  return out;
}

/** The room of a path: `nn`, `compute`, ... for `lib/<room>/...`, `rng` for lib/rng.ts. */
function room(path: string): string | null {
  if (path === "lib/rng.ts") return "rng";
  const match = /^lib\/([^/]+)\//.exec(path);
  return match === null ? null : match[1]!;
}

/** Rooms each room may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  rng: [],
  nn: ["data", "rng"],
  data: ["rng"],
  net: [],
  compute: ["nn", "data", "rng"],
  fl: ["nn", "data", "compute", "net", "rng"],
  cli: ["nn", "data", "compute", "net", "fl", "rng"],
};

Deno.test("every room of lib/ imports only the rooms its wall allows", async () => {
  const entries = [
    "mod.ts",
    "lib/net/mod.ts",
    "lib/net/noise/mod.ts",
    "lib/compute/mod.ts",
    "lib/cli/main.ts",
    ...await sources("lib"),
  ];
  const breaches = new Set<string>();
  for (const [from, to] of await edges(entries)) {
    const a = room(from);
    const b = room(to);
    if (a === null || b === null || a === b) continue;
    if (!(ALLOWED[a] ?? []).includes(b)) breaches.add(`${from} -> ${to}`);
  }
  deepStrictEqual([...breaches].sort(), []);
});

Deno.test("every room of lib/ is named in the walls and in docs/ARCHITECTURE.md", async () => {
  const map = await Deno.readTextFile(`${root}docs/ARCHITECTURE.md`);
  const rooms = new Set((await sources("lib")).map(room).filter((r) => r !== null));
  for (const name of rooms) {
    ok(name in ALLOWED, `lib/${name} has no wall in this test`);
    ok(
      map.includes(name === "rng" ? "lib/rng.ts" : `lib/${name}/`),
      `ARCHITECTURE.md lacks ${name}`,
    );
  }
  for (const path of await sources("lib")) {
    ok(map.includes(path.replace(/^lib\//, "")) || !path.includes("/"), path);
  }
});

Deno.test("only lib/compute touches navigator.gpu", async () => {
  const touching: string[] = [];
  for (const dir of ["lib", "examples"]) {
    for (const path of await sources(dir)) {
      const code = (await Deno.readTextFile(`${root}${path}`))
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/\/\/.*$/gm, "");
      if (/navigator\s*\.\s*gpu/.test(code) && !path.startsWith("lib/compute/")) {
        touching.push(path);
      }
    }
  }
  deepStrictEqual(touching, []);
});

Deno.test("the walls test sees a breach: a module of nn that imported net would be caught", () => {
  const a = room("lib/nn/model.ts")!;
  const b = room("lib/net/channel.ts")!;
  ok(!ALLOWED[a]!.includes(b));
  ok(!ALLOWED.compute!.includes("fl"));
  ok(!ALLOWED.net!.includes("nn"));
});
