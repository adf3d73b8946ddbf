import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { MESSAGE_TYPE, type SecureChannel } from "../../lib/net/channel.ts";
import { ChannelError } from "../../lib/net/errors.ts";
import type { ByteStream } from "../../lib/net/framing.ts";
import { StaticKeyPair } from "../../lib/net/identity.ts";
import { HandshakeError } from "../../lib/net/noise/errors.ts";
import {
  type ClientHandshakeOptions,
  handshakeClient,
  handshakeServer,
  secureReceive,
  secureReceiveBytes,
  secureSend,
  secureSendBytes,
  type ServerHandshakeOptions,
} from "../../lib/net/secure.ts";

const LOOPBACK = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// Helpers: bytes, deadlines, typed rejections

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A frame as it travels: the 2-byte big-endian length, then the body. */
function encodeFrame(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(2 + body.length);
  frame[0] = body.length >> 8;
  frame[1] = body.length & 0xff;
  frame.set(body, 2);
  return frame;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * How long a test waits for something before calling it hung. Only a hang trips it: nothing in
 * these tests takes more than a few seconds even on a slow, busy machine.
 */
const HANG_MS = 120_000;

/** Settles with `promise`, or fails once `ms` have passed, so a hang fails the test. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Observed here, so a rejection after the deadline is not an unhandled one.
  promise.catch(() => {});
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

type CodedError = Error & { code: string };

function assertCoded(
  error: unknown,
  errorClass: abstract new (...args: never[]) => Error,
  code: string,
): asserts error is CodedError {
  assert.ok(error instanceof errorClass, `Expected a ${errorClass.name}, got ${error}`);
  assert.equal((error as { code?: unknown }).code, code, `${error.name}: ${error.message}`);
}

/** Asserts that `promise` rejects with `errorClass` carrying `code`; returns the error. */
async function assertRejects(
  promise: Promise<unknown>,
  errorClass: abstract new (...args: never[]) => Error,
  code: string,
): Promise<CodedError> {
  try {
    await promise;
  } catch (error) {
    assertCoded(error, errorClass, code);
    return error;
  }
  assert.fail(`Expected a ${errorClass.name} with code "${code}", but it resolved`);
}

/** Reads until the peer closes (or the connection fails): waits for the server to hang up. */
async function drain(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(65536);
  try {
    while (await conn.read(buffer) !== null) {
      // Discard.
    }
  } catch {
    // Reset by the peer: it hung up too.
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers: a server stream that counts what it reads, a MITM proxy, connected pairs

/** A connection that counts the bytes read from it. */
class CountingStream implements ByteStream {
  bytesRead = 0;
  #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    const n = await this.#conn.read(buffer);
    if (n !== null) this.bytesRead += n;
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    return this.#conn.write(data);
  }

  close(): void {
    this.#conn.close();
  }
}

/**
 * What the proxy does with one client-to-server frame: forward these frames (none drops it,
 * two duplicate it, a held frame reorders), or forward its length and `after` body bytes and
 * then end the stream (`cut`) or forward nothing more while keeping it open (`stall`).
 */
type FrameAction = Uint8Array[] | { cut: number } | { stall: number };

/** Decides a frame's fate by its index (0 is the client's first handshake message). */
type FrameHook = (index: number, body: Uint8Array) => FrameAction;

interface Proxy {
  port: number;
  /** Settles once both directions have ended. */
  done: Promise<void>;
  /** Closes everything the proxy holds. */
  close(): void;
}

/**
 * A man in the middle for one connection: forwards server-to-client bytes as they are, and
 * client-to-server bytes frame by frame through `hook`.
 */
function startProxy(targetPort: number, hook: FrameHook): Proxy {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const conns: Deno.Conn[] = [];
  let listening = true;
  function close(): void {
    if (listening) closeQuietly(listener);
    listening = false;
    for (const conn of conns) closeQuietly(conn);
  }

  async function clientToServer(down: Deno.Conn, up: Deno.Conn): Promise<void> {
    const chunk = new Uint8Array(65536);
    let pending = new Uint8Array(0);
    let index = 0;
    let muted = false;
    for (;;) {
      const n = await down.read(chunk);
      if (n === null) {
        await up.closeWrite();
        return;
      }
      if (muted) continue;
      const joined = new Uint8Array(pending.length + n);
      joined.set(pending);
      joined.set(chunk.subarray(0, n), pending.length);
      pending = joined;
      while (!muted && pending.length >= 2) {
        const length = (pending[0]! << 8) | pending[1]!;
        if (pending.length < 2 + length) break;
        const body = pending.slice(2, 2 + length);
        pending = pending.slice(2 + length);
        const action = hook(index++, body);
        if (Array.isArray(action)) {
          for (const frame of action) await writeAll(up, encodeFrame(frame));
        } else if ("cut" in action) {
          await writeAll(up, encodeFrame(body).subarray(0, 2 + action.cut));
          await up.closeWrite();
          muted = true;
        } else {
          await writeAll(up, encodeFrame(body).subarray(0, 2 + action.stall));
          muted = true;
        }
      }
    }
  }

  async function serverToClient(up: Deno.Conn, down: Deno.Conn): Promise<void> {
    const chunk = new Uint8Array(65536);
    for (;;) {
      const n = await up.read(chunk);
      if (n === null) return;
      await writeAll(down, chunk.subarray(0, n));
    }
  }

  const done = (async () => {
    let down: Deno.Conn;
    try {
      down = await listener.accept();
    } catch {
      return; // Closed before anyone connected.
    } finally {
      if (listening) closeQuietly(listener);
      listening = false;
    }
    conns.push(down);
    const up = await Deno.connect({ hostname: LOOPBACK, port: targetPort });
    conns.push(up);
    await Promise.all([
      clientToServer(down, up).catch(close),
      serverToClient(up, down).catch(() => {}).finally(close),
    ]);
  })();
  return { port: listener.addr.port, done, close };
}

interface PairOptions {
  server?: Partial<ServerHandshakeOptions>;
  client?: ClientHandshakeOptions;
  /** Puts a man in the middle who applies this to every client-to-server frame. */
  hook?: FrameHook;
}

interface SettledPair {
  server: PromiseSettledResult<SecureChannel>;
  client: PromiseSettledResult<SecureChannel>;
  serverKey: StaticKeyPair;
  serverStream: CountingStream | null;
  proxy: Proxy | null;
  /** Closes both channels and the proxy. */
  close(): Promise<void>;
}

/**
 * Runs both ends of a handshake over loopback (the client pins the server's fingerprint unless
 * `options.client` says otherwise) and reports how each end fared.
 */
async function handshakePair(options: PairOptions = {}): Promise<SettledPair> {
  const serverKey = options.server?.staticKey ?? StaticKeyPair.generate();
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const proxy = options.hook === undefined ? null : startProxy(listener.addr.port, options.hook);
  let serverStream: CountingStream | null = null;
  const serverSide = (async () => {
    try {
      serverStream = new CountingStream(await listener.accept());
    } finally {
      listener.close();
    }
    return await handshakeServer(serverStream, { ...options.server, staticKey: serverKey });
  })();
  const clientSide = (async () => {
    const conn = await Deno.connect({
      hostname: LOOPBACK,
      port: proxy?.port ?? listener.addr.port,
    });
    try {
      return await handshakeClient(conn, {
        serverFingerprint: serverKey.fingerprint,
        ...options.client,
      });
    } catch (error) {
      // Refused before touching the connection (a TypeError, say): hang up, so the server's
      // side ends too.
      closeQuietly(conn);
      throw error;
    }
  })();
  const [server, client] = await Promise.allSettled([serverSide, clientSide]);
  return {
    server,
    client,
    serverKey,
    serverStream,
    proxy,
    async close() {
      for (const side of [server, client]) {
        if (side.status === "fulfilled") await side.value.close();
      }
      proxy?.close();
      await proxy?.done;
    },
  };
}

interface Pair {
  server: SecureChannel;
  client: SecureChannel;
  serverKey: StaticKeyPair;
  serverStream: CountingStream;
  proxy: Proxy | null;
  close(): Promise<void>;
}

/** Two channels connected over loopback; fails if either handshake fails. */
async function connectedPair(options: PairOptions = {}): Promise<Pair> {
  const pair = await handshakePair(options);
  if (pair.server.status === "rejected" || pair.client.status === "rejected") {
    await pair.close();
    throw pair.server.status === "rejected" ? pair.server.reason : (pair.client as {
      reason: unknown;
    }).reason;
  }
  return {
    server: pair.server.value,
    client: pair.client.value,
    serverKey: pair.serverKey,
    serverStream: pair.serverStream!,
    proxy: pair.proxy,
    close: pair.close,
  };
}

// ---------------------------------------------------------------------------------------------
// Round trips

Deno.test("secureSend() and secureReceive() carry text both ways, non-ASCII included", async () => {
  const pair = await connectedPair();
  try {
    const texts = ["Wanna train some models?", "", "héllo wörld ✓ 日本語 🚀", "ü".repeat(70_000)];
    for (const text of texts) {
      await secureSend(pair.client, text);
      assert.equal(await secureReceive(pair.server), text);
      await secureSend(pair.server, text);
      assert.equal(await secureReceive(pair.client), text);
    }
  } finally {
    await pair.close();
  }
});

Deno.test("secureSendBytes() carries an empty message", async () => {
  const pair = await connectedPair();
  try {
    await secureSendBytes(pair.client, new Uint8Array(0));
    assert.deepEqual(await secureReceiveBytes(pair.server), new Uint8Array(0));
    await secureSendBytes(pair.server, new Uint8Array(0));
    assert.deepEqual(await secureReceiveBytes(pair.client), new Uint8Array(0));
  } finally {
    await pair.close();
  }
});

Deno.test("SecureChannel carries a 5 MB random message intact in both directions", async () => {
  const pair = await connectedPair();
  try {
    const up = randomBytes(5 * 1024 * 1024);
    const down = randomBytes(5 * 1024 * 1024 + 7);
    const [, fromClient, , fromServer] = await within(
      HANG_MS,
      Promise.all([
        secureSendBytes(pair.client, up),
        secureReceiveBytes(pair.server),
        secureSendBytes(pair.server, down),
        secureReceiveBytes(pair.client),
      ]),
      "Two 5 MB messages",
    );
    assert.ok(bytesEqual(fromClient, up), "The client's 5 MB message arrived altered");
    assert.ok(bytesEqual(fromServer, down), "The server's 5 MB message arrived altered");
  } finally {
    await pair.close();
  }
});

Deno.test("SecureChannel.send() queues concurrent sends so they arrive whole and in order", async () => {
  const pair = await connectedPair();
  try {
    // Sizes 0 .. ~200 KB: some messages take several chunks, so interleaving would show.
    const messages = Array.from({ length: 120 }, (_, i) => randomBytes((i * 1723) % 200_000));
    const receiveAll = async (channel: SecureChannel) => {
      const received: Uint8Array[] = [];
      for (let i = 0; i < messages.length; i++) received.push(await secureReceiveBytes(channel));
      return received;
    };
    const sends = [
      ...messages.map((message) => secureSendBytes(pair.client, message)),
      ...messages.map((message) => secureSendBytes(pair.server, message)),
    ];
    const receiving = Promise.all([receiveAll(pair.server), receiveAll(pair.client)]);
    await within(HANG_MS, Promise.all([receiving, ...sends]), "Queued sends");
    for (const received of await receiving) {
      assert.equal(received.length, messages.length);
      received.forEach((message, i) => assert.ok(bytesEqual(message, messages[i]!), `#${i}`));
    }
  } finally {
    await pair.close();
  }
});

Deno.test("SecureChannel carries application types 16-255 and refuses others", async () => {
  const pair = await connectedPair();
  try {
    await pair.client.send(200, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await pair.server.receive(), { type: 200, data: new Uint8Array([1, 2, 3]) });
    for (const type of [0, 256, 1.5]) {
      assert.throws(() => pair.client.send(type, new Uint8Array(1)), RangeError);
    }
  } finally {
    await pair.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The original library's flow, as two processes

const EXAMPLE_SERVER = fileURLToPath(new URL("../../examples/server.ts", import.meta.url));
const EXAMPLE_CLIENT = fileURLToPath(new URL("../../examples/client.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

function freePort(): number {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

function spawnDeno(script: string, args: string[], cwd: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, script, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("examples/server.ts and examples/client.ts run the original flow over Noise", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fedgpu_example_" });
  const port = freePort();
  const server = spawnDeno(EXAMPLE_SERVER, ["--once", "--port", String(port)], dir);
  let client: Deno.ChildProcess | null = null;
  const decoder = new TextDecoder();
  const serverStderr = new Response(server.stderr).text();
  const serverStdout = server.stdout.getReader();
  let serverOut = "";
  try {
    while (!serverOut.includes("Listening on")) {
      const { value, done } = await within(HANG_MS, serverStdout.read(), "The server's start");
      if (done) assert.fail(`The server exited early: ${serverOut}\n${await serverStderr}`);
      serverOut += decoder.decode(value, { stream: true });
    }
    client = spawnDeno(EXAMPLE_CLIENT, ["--port", String(port)], dir);
    const clientResult = await within(HANG_MS, client.output(), "The client");
    const clientOut = decoder.decode(clientResult.stdout);
    const clientErr = decoder.decode(clientResult.stderr);
    assert.equal(clientResult.code, 0, clientErr);
    assert.match(clientOut, /Server said: Wanna train some models\?/);
    assert.ok(
      clientOut.includes("Received model: Chain(Dense(10 => 5, relu), Dense(5 => 2), softmax)"),
      clientOut,
    );
    for (;;) {
      const { value, done } = await within(HANG_MS, serverStdout.read(), "The server's output");
      if (done) break;
      serverOut += decoder.decode(value, { stream: true });
    }
    const status = await within(HANG_MS, server.status, "The server's exit");
    assert.equal(status.code, 0, await serverStderr);
    assert.match(serverOut, /Client said: Oh yes/);
    const keyFile = await Deno.stat(`${dir}/.fedgpu/server_key.json`);
    assert.equal(keyFile.mode! & 0o777, 0o600);
  } finally {
    for (const child of [server, client]) {
      try {
        child?.kill();
      } catch {
        // Already exited.
      }
    }
    await serverStdout.cancel().catch(() => {});
    await server.status;
    await serverStderr;
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Tampering on the wire, by a man in the middle. Frames 0 and 1 are the client's handshake
// messages (XX: "-> e" and "-> s, se"); frame 2 is its first transport message.

function flipBit(bytes: Uint8Array, at: number): Uint8Array {
  const copy = bytes.slice();
  copy[at]! ^= 0x01;
  return copy;
}

/** Applies `change` to frame `target` and forwards every other frame as it is. */
function atFrame(target: number, change: (body: Uint8Array) => FrameAction): FrameHook {
  return (index, body) => index === target ? change(body) : [body];
}

/** Holds frame `first` back and sends it after frame `first + 1`. */
function swapFrames(first: number): FrameHook {
  let held: Uint8Array | null = null;
  return (index, body) => {
    if (index === first) {
      held = body;
      return [];
    }
    if (index === first + 1) return [body, held!];
    return [body];
  };
}

const TAMPERING: {
  what: string;
  hook: FrameHook;
  sends: string[];
  delivered: number;
  code: string;
}[] = [
  {
    what: "a flipped bit in a transport frame's ciphertext",
    hook: atFrame(2, (body) => [flipBit(body, 0)]),
    sends: ["hello"],
    delivered: 0,
    code: "decrypt",
  },
  {
    what: "a flipped bit in a transport frame's tag",
    hook: atFrame(2, (body) => [flipBit(body, body.length - 1)]),
    sends: ["hello"],
    delivered: 0,
    code: "decrypt",
  },
  {
    what: "a replayed frame",
    hook: atFrame(2, (body) => [body, body]),
    sends: ["hello"],
    delivered: 1,
    code: "decrypt",
  },
  {
    what: "two reordered frames",
    hook: swapFrames(2),
    sends: ["one", "two"],
    delivered: 0,
    code: "decrypt",
  },
  {
    what: "a dropped frame",
    hook: atFrame(2, () => []),
    sends: ["one", "two"],
    delivered: 0,
    code: "decrypt",
  },
  {
    what: "a frame cut off mid-way",
    hook: atFrame(2, (body) => ({ cut: body.length >> 1 })),
    sends: ["hello"],
    delivered: 0,
    code: "truncated",
  },
];

for (const { what, hook, sends, delivered, code } of TAMPERING) {
  Deno.test(`SecureChannel.receive() rejects ${what} with ChannelError "${code}"`, async () => {
    const pair = await connectedPair({ hook });
    try {
      for (const text of sends) await secureSend(pair.client, text);
      for (let i = 0; i < delivered; i++) {
        assert.equal(await secureReceive(pair.server), sends[i]);
      }
      await within(HANG_MS, assertRejects(pair.server.receive(), ChannelError, code), what);
      assert.ok(pair.server.closed, "The channel stays open after an attack");
      await assertRejects(pair.server.receive(), ChannelError, "closed");
    } finally {
      await pair.close();
    }
  });
}

Deno.test('SecureChannel.receive() rejects a message over its limit with "too-large" at once', async () => {
  const pair = await connectedPair({
    server: { maxMessageBytes: 1 << 20 },
    client: { maxMessageBytes: 4 << 20 },
  });
  try {
    const sending = secureSendBytes(pair.client, randomBytes(2 << 20)).catch(() => {});
    const error = await within(
      HANG_MS,
      assertRejects(pair.server.receive(), ChannelError, "too-large"),
      "An oversized message",
    );
    assert.match(error.message, /2097152 bytes exceeds the limit of 1048576/);
    // Refused from the first frame's header, not after taking in the message.
    assert.ok(pair.serverStream.bytesRead < 256 * 1024, `read ${pair.serverStream.bytesRead}`);
    assert.ok(pair.server.closed);
    await within(HANG_MS, sending, "The refused send");
  } finally {
    await pair.close();
  }
});

Deno.test("SecureChannel.receive() refuses a declared 1 TiB message before allocating it", async () => {
  const pair = await connectedPair({ server: { maxMessageBytes: 1 << 20 } });
  try {
    // A view that claims 1 TiB: allocating that much would throw a RangeError, so a
    // ChannelError "too-large" shows the declared length was checked first. The sender gives
    // up after 64 chunks in case the receiver keeps reading.
    const zeros = new Uint8Array(65536);
    let chunks = 0;
    const huge = {
      length: 2 ** 40,
      subarray(begin: number, end: number) {
        if (++chunks > 64) throw new Error("The receiver kept reading");
        return zeros.subarray(0, end - begin);
      },
    } as unknown as Uint8Array;
    const sending = secureSendBytes(pair.client, huge).catch(() => {});
    const error = await within(
      HANG_MS,
      assertRejects(pair.server.receive(), ChannelError, "too-large"),
      "A declared 1 TiB message",
    );
    assert.match(error.message, /1099511627776 bytes/);
    await within(HANG_MS, sending, "The refused send");
  } finally {
    await pair.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Stalls and closes

Deno.test('SecureChannel.receive() times out on a chunk stalled mid-frame with "timeout"', async () => {
  // Frame 2 starts a 200 KB message; frame 3 (a chunk) stops halfway.
  const pair = await connectedPair({
    server: { frameTimeoutMs: 300, idleTimeoutMs: 10 * HANG_MS },
    hook: atFrame(3, (body) => ({ stall: body.length >> 1 })),
  });
  try {
    const sending = secureSendBytes(pair.client, randomBytes(200_000)).catch(() => {});
    const started = performance.now();
    await within(HANG_MS, assertRejects(pair.server.receive(), ChannelError, "timeout"), "A stall");
    // Cut off by the 300 ms frame timeout, not the idle timeout, which is far beyond HANG_MS.
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 250 && elapsed < HANG_MS, `timed out after ${elapsed} ms`);
    assert.ok(pair.server.closed);
    await within(HANG_MS, sending, "The stalled send");
  } finally {
    await pair.close();
  }
});

Deno.test(
  'SecureChannel.receive() times out on a message start stalled mid-frame with "timeout"',
  async () => {
    // The idle timeout is far beyond HANG_MS: once a frame has begun, it must be finished
    // within frameTimeoutMs, whether it starts a message or continues one.
    const pair = await connectedPair({
      server: { frameTimeoutMs: 300, idleTimeoutMs: 10 * HANG_MS },
      hook: atFrame(2, (body) => ({ stall: body.length >> 1 })),
    });
    try {
      await secureSend(pair.client, "hello");
      const receiving = assertRejects(pair.server.receive(), ChannelError, "timeout");
      await within(HANG_MS, receiving, "A half-sent first frame with frameTimeoutMs 300");
    } finally {
      // Closing the channel also ends a receive still waiting for the idle timeout.
      await pair.close();
    }
  },
);

Deno.test('SecureChannel.receive() times out an idle peer with "timeout"', async () => {
  const pair = await connectedPair({ server: { idleTimeoutMs: 300 } });
  try {
    const started = performance.now();
    await within(HANG_MS, assertRejects(pair.server.receive(), ChannelError, "timeout"), "Idle");
    assert.ok(performance.now() - started >= 250);
  } finally {
    await pair.close();
  }
});

Deno.test('SecureChannel.receive() after the peer\'s goodbye or close() rejects with "closed"', async () => {
  const pair = await connectedPair();
  try {
    await pair.client.close();
    assert.ok(pair.client.closed);
    await assertRejects(pair.server.receive(), ChannelError, "closed");
    await assertRejects(pair.server.receive(), ChannelError, "closed");
    await assertRejects(pair.client.receive(), ChannelError, "closed");
    await assertRejects(secureSend(pair.client, "late"), ChannelError, "closed");
  } finally {
    await pair.close();
  }
});

Deno.test('secureReceive() on a bytes message rejects with "unexpected-type" and closes', async () => {
  const pair = await connectedPair();
  try {
    await secureSendBytes(pair.client, new Uint8Array([1, 2, 3]));
    await assertRejects(secureReceive(pair.server), ChannelError, "unexpected-type");
    assert.ok(pair.server.closed);
    await secureSend(pair.server, "text").catch(() => {});
    await assertRejects(secureReceiveBytes(pair.client), ChannelError, "closed");
  } finally {
    await pair.close();
  }
});

Deno.test('secureReceiveBytes() on a text message rejects with "unexpected-type"', async () => {
  const pair = await connectedPair();
  try {
    await secureSend(pair.client, "not bytes");
    await assertRejects(secureReceiveBytes(pair.server), ChannelError, "unexpected-type");
  } finally {
    await pair.close();
  }
});

Deno.test('secureReceive() rejects text that is not UTF-8 with "protocol"', async () => {
  const pair = await connectedPair();
  try {
    await pair.client.send(MESSAGE_TYPE.text, new Uint8Array([0x68, 0xff, 0xfe]));
    await assertRejects(secureReceive(pair.server), ChannelError, "protocol");
  } finally {
    await pair.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Handshake failures

Deno.test('handshakeClient() refuses a server with another key: "pinned-key-mismatch"', async () => {
  const other = StaticKeyPair.generate();
  const pair = await handshakePair({ client: { serverFingerprint: other.fingerprint } });
  try {
    assert.equal(pair.client.status, "rejected");
    assert.equal(pair.server.status, "rejected");
    const clientError = (pair.client as PromiseRejectedResult).reason;
    assertCoded(clientError, HandshakeError, "pinned-key-mismatch");
    assert.ok(clientError.message.includes(pair.serverKey.fingerprint), clientError.message);
    assert.ok(clientError.message.includes(other.fingerprint), clientError.message);
    // The client hung up before revealing its key; the server sees the connection end.
    assertCoded((pair.server as PromiseRejectedResult).reason, HandshakeError, "closed");
  } finally {
    await pair.close();
  }
});

Deno.test('handshakeServer() refuses a client off its allow-list: "unknown-client"', async () => {
  const clientKey = StaticKeyPair.generate();
  const allowedKey = StaticKeyPair.generate();
  const pair = await handshakePair({
    server: { allowedClients: [allowedKey.fingerprint] },
    client: { staticKey: clientKey },
  });
  try {
    assert.equal(pair.server.status, "rejected");
    const serverError = (pair.server as PromiseRejectedResult).reason;
    assertCoded(serverError, HandshakeError, "unknown-client");
    assert.ok(serverError.message.includes(clientKey.fingerprint), serverError.message);
    // In XX the client finishes first; its channel then finds the connection gone.
    if (pair.client.status === "fulfilled") {
      await within(
        HANG_MS,
        assertRejects(pair.client.value.receive(), ChannelError, "closed"),
        "The refused client's receive",
      );
    }
  } finally {
    await pair.close();
  }
});

Deno.test("handshakeServer() admits a client on its allow-list and learns its key", async () => {
  const clientKey = StaticKeyPair.generate();
  const pair = await connectedPair({
    server: { allowedClients: [StaticKeyPair.generate().fingerprint, clientKey.fingerprint] },
    client: { staticKey: clientKey },
  });
  try {
    assert.deepEqual(pair.server.remoteStaticKey, clientKey.publicKey);
    assert.deepEqual(pair.client.remoteStaticKey, pair.serverKey.publicKey);
  } finally {
    await pair.close();
  }
});

/** Runs a server handshake on one accepted connection while `peer` plays the client. */
async function serverAgainst(
  peer: (conn: Deno.Conn) => Promise<void>,
  options: Partial<ServerHandshakeOptions> = {},
): Promise<{ error: unknown; elapsedMs: number }> {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const accepted = listener.accept().finally(() => listener.close());
  const conn = await Deno.connect({ hostname: LOOPBACK, port: listener.addr.port });
  try {
    const serverConn = await accepted;
    const started = performance.now();
    const [serverResult] = await within(
      HANG_MS,
      Promise.allSettled([
        handshakeServer(serverConn, { staticKey: StaticKeyPair.generate(), ...options }),
        peer(conn),
      ]),
      "A hostile handshake",
    );
    if (serverResult.status === "fulfilled") {
      await serverResult.value.close();
      assert.fail("The server completed a handshake with a hostile peer");
    }
    return { error: serverResult.reason, elapsedMs: performance.now() - started };
  } finally {
    closeQuietly(conn);
  }
}

/** A peer that sends random frames shaped like XX's messages 1 and 3. */
async function sendGarbageFrames(conn: Deno.Conn): Promise<void> {
  await writeAll(conn, encodeFrame(randomBytes(32)));
  await writeAll(conn, encodeFrame(randomBytes(64)));
  await drain(conn);
}

/** A peer that sends a frame header promising 65535 bytes, a few bytes, and hangs up. */
async function sendFragmentAndClose(conn: Deno.Conn): Promise<void> {
  await writeAll(conn, new Uint8Array([0xff, 0xff, 1, 2, 3]));
  conn.close();
}

/**
 * A peer that sends a frame header promising 65535 bytes, then one byte every 100 ms until the
 * server hangs up: a timeout that restarts with each byte would never end it, only a deadline
 * for the whole handshake does.
 */
async function sendSlowly(conn: Deno.Conn): Promise<void> {
  let hungUp = false;
  const hangUp = drain(conn).then(() => {
    hungUp = true;
  });
  const bytes = new Uint8Array([0xff, 0xff, ...randomBytes(65535)]);
  for (let i = 0; i < bytes.length && !hungUp; i++) {
    try {
      await writeAll(conn, bytes.subarray(i, i + 1));
    } catch {
      break;
    }
    await sleep(100);
  }
  await hangUp;
}

Deno.test("handshakeServer() refuses garbage instead of a handshake with a HandshakeError", async () => {
  const { error } = await serverAgainst(sendGarbageFrames);
  assertCoded(error, HandshakeError, "decrypt");
});

Deno.test('handshakeServer() refuses a fragment of a frame then a close: "closed"', async () => {
  const { error } = await serverAgainst(sendFragmentAndClose);
  assertCoded(error, HandshakeError, "closed");
  assertCoded(error.cause, ChannelError, "truncated");
});

Deno.test('handshakeServer() cuts off a peer sending a byte every 100 ms: "timeout"', async () => {
  const { error, elapsedMs } = await serverAgainst(sendSlowly, { handshakeTimeoutMs: 1_000 });
  assertCoded(error, HandshakeError, "timeout");
  // Without a deadline the peer would keep the handshake open for 6500 s.
  assert.ok(elapsedMs >= 950 && elapsedMs < HANG_MS, `cut off after ${elapsedMs} ms`);
});

// ---------------------------------------------------------------------------------------------
// A server keeps serving while under attack

Deno.test("a server loop serves honest clients while hostile ones fail with typed errors", async () => {
  const key = StaticKeyPair.generate();
  const model = randomBytes(100_000);
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = listener.addr.port;
  const answers = new Map<number, string>();
  const failures = new Map<number, { error: unknown; at: number }>();
  const handlers: Promise<void>[] = [];

  async function serveOne(conn: Deno.TcpConn): Promise<void> {
    const peer = conn.remoteAddr.port;
    try {
      // Long enough that the honest clients, done in milliseconds, finish well before the slow
      // one is cut off.
      const channel = await handshakeServer(conn, { staticKey: key, handshakeTimeoutMs: 10_000 });
      try {
        await secureSend(channel, "Wanna train some models?");
        answers.set(peer, await secureReceive(channel));
        await secureSendBytes(channel, model);
      } finally {
        await channel.close();
      }
    } catch (error) {
      failures.set(peer, { error, at: performance.now() });
    }
  }
  const serving = (async () => {
    for await (const conn of listener) handlers.push(serveOne(conn));
  })();

  async function connect(): Promise<Deno.TcpConn> {
    return await Deno.connect({ hostname: LOOPBACK, port });
  }
  async function hostile(peer: (conn: Deno.Conn) => Promise<void>): Promise<number> {
    const conn = await connect();
    try {
      await peer(conn);
    } finally {
      closeQuietly(conn);
    }
    return conn.localAddr.port;
  }
  async function honest(): Promise<{ port: number; at: number }> {
    const conn = await connect();
    const channel = await handshakeClient(conn, { serverFingerprint: key.fingerprint });
    try {
      assert.equal(await secureReceive(channel), "Wanna train some models?");
      await secureSend(channel, "Oh yes");
      assert.ok(bytesEqual(await secureReceiveBytes(channel), model));
    } finally {
      await channel.close();
    }
    return { port: conn.localAddr.port, at: performance.now() };
  }
  async function wrongPin(conn: Deno.Conn): Promise<void> {
    const other = StaticKeyPair.generate().fingerprint;
    await assertRejects(
      handshakeClient(conn, { serverFingerprint: other }),
      HandshakeError,
      "pinned-key-mismatch",
    );
  }
  async function forgedFrame(conn: Deno.Conn): Promise<void> {
    const channel = await handshakeClient(conn, { serverFingerprint: key.fingerprint });
    await secureReceive(channel);
    await writeAll(conn, encodeFrame(randomBytes(40)));
    await assertRejects(channel.receive(), ChannelError, "closed");
  }

  try {
    const attacks = {
      garbage: hostile(sendGarbageFrames),
      fragment: hostile(sendFragmentAndClose),
      slow: hostile(sendSlowly),
      wrongPin: hostile(wrongPin),
      forged: hostile(forgedFrame),
    };
    const honestDone = await within(
      HANG_MS,
      Promise.all(Array.from({ length: 5 }, honest)),
      "Honest clients",
    );
    const ports = Object.fromEntries(
      await within(
        HANG_MS,
        Promise.all(Object.entries(attacks).map(async ([name, p]) => [name, await p] as const)),
        "Hostile clients",
      ),
    );
    listener.close();
    await serving;
    await within(HANG_MS, Promise.all(handlers), "The server's handlers");

    for (const { port } of honestDone) {
      assert.equal(answers.get(port), "Oh yes");
      assert.equal(failures.get(port), undefined);
    }
    const expected: [string, abstract new (...args: never[]) => Error, string][] = [
      ["garbage", HandshakeError, "decrypt"],
      ["fragment", HandshakeError, "closed"],
      ["slow", HandshakeError, "timeout"],
      ["wrongPin", HandshakeError, "closed"],
      ["forged", ChannelError, "decrypt"],
    ];
    for (const [name, errorClass, code] of expected) {
      const failure = failures.get(ports[name]!);
      assert.ok(failure !== undefined, `No failure recorded for the ${name} client`);
      assertCoded(failure.error, errorClass, code);
    }
    assert.equal(failures.size, expected.length);
    // The honest clients did not wait for the slow one to be cut off.
    const slowCutOff = failures.get(ports.slow!)!.at;
    assert.ok(honestDone.every(({ at }) => at < slowCutOff));
  } finally {
    closeQuietly(listener);
    await serving;
    await Promise.allSettled(handlers);
  }
});

// ---------------------------------------------------------------------------------------------
// Handshake patterns

for (const pattern of ["NN", "NK", "IK", "XK"] as const) {
  Deno.test(`handshakeServer() and handshakeClient() agree on the ${pattern} pattern`, async () => {
    const serverKey = StaticKeyPair.generate();
    const clientKey = StaticKeyPair.generate();
    const clientProvesKey = pattern === "IK" || pattern === "XK";
    const pair = await connectedPair({
      server: {
        staticKey: serverKey,
        pattern,
        allowedClients: clientProvesKey ? [clientKey.fingerprint] : undefined,
      },
      client: pattern === "NN" ? { pattern, serverFingerprint: undefined, allowUnpinned: true } : {
        pattern,
        serverFingerprint: undefined,
        serverPublicKey: serverKey.publicKey,
        staticKey: clientKey,
      },
    });
    try {
      await secureSend(pair.client, `hello over ${pattern}`);
      assert.equal(await secureReceive(pair.server), `hello over ${pattern}`);
      await secureSendBytes(pair.server, new Uint8Array([7, 8]));
      assert.deepEqual(await secureReceiveBytes(pair.client), new Uint8Array([7, 8]));
      assert.deepEqual(pair.client.handshakeHash, pair.server.handshakeHash);
      assert.deepEqual(pair.client.remoteStaticKey, pattern === "NN" ? null : serverKey.publicKey);
      assert.deepEqual(pair.server.remoteStaticKey, clientProvesKey ? clientKey.publicKey : null);
    } finally {
      await pair.close();
    }
  });
}

Deno.test("handshakeClient() with the NK pattern and the wrong server key fails", async () => {
  const pair = await handshakePair({
    server: { pattern: "NK" },
    client: {
      pattern: "NK",
      serverFingerprint: undefined,
      serverPublicKey: StaticKeyPair.generate().publicKey,
    },
  });
  try {
    assert.equal(pair.server.status, "rejected");
    assert.equal(pair.client.status, "rejected");
    assertCoded((pair.server as PromiseRejectedResult).reason, HandshakeError, "decrypt");
    assert.ok((pair.client as PromiseRejectedResult).reason instanceof HandshakeError);
  } finally {
    await pair.close();
  }
});

Deno.test("handshakeClient() refuses a pin that the NN pattern cannot check", async () => {
  // NN never shows the server's key, so a fingerprint given with it would go unchecked.
  const pair = await handshakePair({ server: { pattern: "NN" }, client: { pattern: "NN" } });
  try {
    assert.equal(pair.client.status, "rejected", "An NN channel was opened with an unchecked pin");
    assert.ok((pair.client as PromiseRejectedResult).reason instanceof TypeError);
  } finally {
    await pair.close();
  }
});

Deno.test("handshakeClient() needs a pin or allowUnpinned", async () => {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const accepted = listener.accept();
  const conn = await Deno.connect({ hostname: LOOPBACK, port: listener.addr.port });
  try {
    await assert.rejects(handshakeClient(conn), TypeError);
    await assert.rejects(handshakeClient(conn, { pattern: "NK", allowUnpinned: true }), TypeError);
  } finally {
    conn.close();
    (await accepted).close();
    listener.close();
  }
});
