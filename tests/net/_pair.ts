/** Two secure channels connected by an XX handshake over loopback, for tests. */

import type { SecureChannel } from "../../lib/net/channel.ts";
import { StaticKeyPair } from "../../lib/net/identity.ts";
import { handshakeClient, handshakeServer } from "../../lib/net/secure.ts";

/** Both ends of a channel. */
export interface Pair {
  /** The accepting end. */
  server: SecureChannel;
  /** The connecting end. */
  client: SecureChannel;
  /** Closes both ends. */
  close(): Promise<void>;
}

/** Two channels connected by an XX handshake over loopback. */
export async function connectedPair(): Promise<Pair> {
  const serverKey = StaticKeyPair.generate();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serverSide = (async () => {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } finally {
      listener.close();
    }
    return await handshakeServer(conn, { staticKey: serverKey, idleTimeoutMs: 10_000 });
  })();
  const clientSide = (async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    return await handshakeClient(conn, {
      serverFingerprint: serverKey.fingerprint,
      idleTimeoutMs: 10_000,
    });
  })();
  const [server, client] = await Promise.all([serverSide, clientSide]);
  return {
    server,
    client,
    async close() {
      await client.close();
      await server.close();
    },
  };
}
