/**
 * The original library's client example, over the Noise secure channel: it reads the server's
 * question, answers "Oh yes", and prints the model it receives.
 *
 * ```sh
 * deno run -A examples/client.ts [--fingerprint SHA256:...] [--port 3000]
 * ```
 *
 * The server's key is pinned by `--fingerprint`, or by .fedgpu/server.fingerprint that the
 * server example writes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  handshakeClient,
  modelFromBytes,
  secureReceive,
  secureReceiveBytes,
  secureSend,
} from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: "3000" },
    host: { type: "string", default: "127.0.0.1" },
    fingerprint: { type: "string" },
  },
});

const serverFingerprint = values.fingerprint ??
  (await Deno.readTextFile(".fedgpu/server.fingerprint").catch(() => {
    console.error("Pass --fingerprint (the server prints it at start)");
    Deno.exit(2);
  })).trim();

const conn = await Deno.connect({ hostname: values.host, port: Number(values.port) });
const channel = await handshakeClient(conn, { serverFingerprint });
console.log(`Server said: ${await secureReceive(channel)}`);
await secureSend(channel, "Oh yes");
const model = modelFromBytes(await secureReceiveBytes(channel));
console.log(`Received model: ${model}`);
console.log(`Parameters: ${model.params.length}`);
await channel.close();
