/**
 * The demo: FedAvg on MNIST with the FedAvg paper's 2NN, simulated in process.
 * 100 clients of 600 examples, C=0.1, E=1, B=10; stops at 97% test accuracy.
 *
 * ```sh
 * deno run -A examples/simulate.ts --rounds 30 --partition shards
 * ```
 *
 * The same as `fedgpu simulate`; see `lib/fl/simulate.ts` for the library call it makes.
 *
 * @module
 */

import { main } from "../lib/cli/main.ts";

Deno.exit(await main(["simulate", ...Deno.args]));
