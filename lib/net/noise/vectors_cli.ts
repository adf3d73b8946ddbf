/**
 * Runs a Noise test-vector file (the cacophony JSON format, Noise Protocol Framework revision
 * 34) against this implementation: one line per vector (`NAME: ok`, `NAME: FAIL reason` or
 * `NAME: skipped: unsupported (reason)` for other suites and modifiers), then
 * `N passed, M failed` (`, K skipped` when any were) last. Exits 1 if any vector failed, 2 if
 * the file cannot be read.
 *
 * ```sh
 * deno task noise-vectors tests/testdata/noise/cacophony_25519_aesgcm_sha256.json
 * ```
 *
 * This module needs Deno.
 *
 * @module
 */

import { HandshakeError } from "./errors.ts";
import { loadVectorFile, type NoiseVector, runVector } from "./vectors.ts";

const [path, ...rest] = Deno.args;
if (path === undefined || rest.length > 0) {
  console.error("Usage: deno task noise-vectors FILE");
  Deno.exit(2);
}

let vectors: NoiseVector[];
try {
  vectors = await loadVectorFile(path);
} catch (error) {
  console.error(`Cannot read ${path}: ${error instanceof Error ? error.message : error}`);
  Deno.exit(2);
}

let passed = 0;
let failed = 0;
let skipped = 0;
for (const vector of vectors) {
  try {
    await runVector(vector);
    passed++;
    console.log(`${vector.protocol_name}: ok`);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof HandshakeError && error.code === "unsupported") {
      skipped++;
      console.log(`${vector.protocol_name}: skipped: unsupported (${reason})`);
    } else {
      failed++;
      console.log(`${vector.protocol_name}: FAIL ${reason}`);
    }
  }
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
if (failed > 0) Deno.exit(1);
