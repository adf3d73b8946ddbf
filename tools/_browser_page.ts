/**
 * The page script of `run_browser_smoke.ts`: runs {@linkcode smoke} and posts its result, or
 * the error it threw, to `/result` of the page's origin.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { smoke } from "./browser_smoke.ts";

let body: string;
try {
  body = JSON.stringify({ result: await smoke() });
} catch (error) {
  body = JSON.stringify({
    error: error instanceof Error ? error.stack ?? error.message : `${error}`,
  });
}
await fetch("/result", { method: "POST", body });
