/**
 * The original library's server example, over the Noise secure channel: on each connection it
 * sends "Wanna train some models?", reads the answer, then sends a model.
 *
 * ```sh
 * deno run -A examples/server.ts            # port 3000; key in .fedgpu/server_key.json
 * deno run -A examples/client.ts            # in another terminal
 * ```
 *
 * The server's static key is created on first start (mode 0600) and its fingerprint printed
 * and written to .fedgpu/server.fingerprint, which the client example reads to pin it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  Chain,
  Dense,
  handshakeServer,
  loadOrCreateKeyFile,
  modelToBytes,
  relu,
  secureReceive,
  secureSend,
  secureSendBytes,
  softmax,
} from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: "3000" },
    "key-file": { type: "string", default: ".fedgpu/server_key.json" },
    once: { type: "boolean", default: false },
  },
});

const { key, created } = await loadOrCreateKeyFile(values["key-file"]);
await Deno.writeTextFile(".fedgpu/server.fingerprint", key.fingerprint + "\n");
console.log(`${created ? "Created" : "Loaded"} server key ${key.fingerprint}`);

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(values.port) });
console.log(`Listening on 127.0.0.1:${values.port}`);

async function serve(conn: Deno.Conn): Promise<void> {
  const channel = await handshakeServer(conn, { staticKey: key });
  await secureSend(channel, "Wanna train some models?");
  console.log(`Client said: ${await secureReceive(channel)}`);
  await secureSendBytes(channel, modelToBytes(Chain(Dense(10, 5, relu), Dense(5, 2), softmax)));
  await channel.close();
}

for await (const conn of listener) {
  const done = serve(conn).catch((error) => console.error(`Connection failed: ${error.message}`));
  if (values.once) {
    await done;
    break;
  }
}
