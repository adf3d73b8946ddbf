/**
 * Throughput of a 64 MB model over loopback: the Noise secure channel against Deno's own
 * TLS 1.3 (`Deno.listenTls`, with a self-signed certificate this script makes with openssl) on
 * the same payload. One JSON line per transport, then their ratio last.
 *
 * ```sh
 * deno run -A bench/channel_bench.ts [--mb 64] [--runs 3]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  handshakeClient,
  handshakeServer,
  secureReceive,
  secureReceiveBytes,
  secureSend,
  secureSendBytes,
  StaticKeyPair,
} from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { mb: { type: "string", default: "64" }, runs: { type: "string", default: "3" } },
});
const size = Number(values.mb) * 1024 * 1024;
const runs = Number(values.runs);
const payload = new Uint8Array(size);
for (let i = 0; i < size; i += 65536) crypto.getRandomValues(payload.subarray(i, i + 65536));

/** Best of `runs` timings of `once`, in MB/s. */
async function best(once: () => Promise<void>): Promise<number> {
  let fastest = Infinity;
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    await once();
    fastest = Math.min(fastest, (performance.now() - started) / 1000);
  }
  return size / 1024 / 1024 / fastest;
}

async function noise(): Promise<number> {
  const serverKey = StaticKeyPair.generate();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    for (let run = 0; run < runs; run++) {
      const channel = await handshakeServer(await listener.accept(), {
        staticKey: serverKey,
        maxMessageBytes: size,
      });
      const received = await secureReceiveBytes(channel);
      await secureSend(channel, String(received.length));
      await channel.close();
    }
  })();
  const speed = await best(async () => {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
    });
    const channel = await handshakeClient(conn, { serverPublicKey: serverKey.publicKey });
    await secureSendBytes(channel, payload);
    if (Number(await secureReceive(channel)) !== size) throw new Error("Lost bytes");
    await channel.close();
  });
  await server;
  listener.close();
  return speed;
}

/** A throwaway CA and a localhost certificate it signs, made with openssl. */
async function makeCertificate(): Promise<{ ca: string; cert: string; key: string } | null> {
  const dir = await Deno.makeTempDir();
  const openssl = async (args: string[]) =>
    (await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "null" })
      .output()).success;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  try {
    await Deno.writeTextFile(
      `${dir}/leaf.ext`,
      "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
    const ok = await openssl([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=fedgpu bench CA",
    ]) &&
      await openssl([
        "req",
        ...ec,
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
      ]) &&
      await openssl([
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
      ]);
    if (!ok) return null;
    return {
      ca: await Deno.readTextFile(`${dir}/ca.pem`),
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } catch {
    return null;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readExactly(conn: Deno.Conn, into: Uint8Array): Promise<void> {
  for (let filled = 0; filled < into.length;) {
    const n = await conn.read(into.subarray(filled));
    if (n === null) throw new Error("Connection closed early");
    filled += n;
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await conn.write(data.subarray(offset));
}

async function tls(certificate: { ca: string; cert: string; key: string }): Promise<number> {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: certificate.cert,
    key: certificate.key,
  });
  const server = (async () => {
    for (let run = 0; run < runs; run++) {
      const conn = await listener.accept();
      const header = new Uint8Array(8);
      await readExactly(conn, header);
      const length = Number(new DataView(header.buffer).getBigUint64(0));
      // The same work as the secure channel's receiver: the whole message in memory.
      await readExactly(conn, new Uint8Array(length));
      await writeAll(conn, new Uint8Array(header));
      conn.close();
    }
  })();
  const speed = await best(async () => {
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
      caCerts: [certificate.ca],
    });
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(size));
    await writeAll(conn, header);
    await writeAll(conn, payload);
    await readExactly(conn, header);
    conn.close();
  });
  await server;
  listener.close();
  return speed;
}

const noiseSpeed = await noise();
console.log(JSON.stringify({
  name: "channel-transfer",
  transport: "noise-xx-aesgcm",
  mb: size / 1024 / 1024,
  mb_per_s: Number(noiseSpeed.toFixed(1)),
}));
const certificate = await makeCertificate();
if (certificate === null) {
  console.log("TLS comparison skipped: openssl could not make a self-signed certificate");
  console.log(JSON.stringify({
    name: "channel-vs-tls",
    value: null,
    unit: "ratio",
    noise_mb_per_s: Number(noiseSpeed.toFixed(1)),
  }));
} else {
  const tlsSpeed = await tls(certificate);
  console.log(JSON.stringify({
    name: "channel-transfer",
    transport: "tls13",
    mb: size / 1024 / 1024,
    mb_per_s: Number(tlsSpeed.toFixed(1)),
  }));
  console.log(JSON.stringify({
    name: "channel-vs-tls",
    value: Number((noiseSpeed / tlsSpeed).toFixed(3)),
    unit: "ratio",
    noise_mb_per_s: Number(noiseSpeed.toFixed(1)),
    tls_mb_per_s: Number(tlsSpeed.toFixed(1)),
  }));
}
