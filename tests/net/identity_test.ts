import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  fingerprint,
  KeyFileError,
  loadOrCreateKeyFile,
  StaticKeyPair,
} from "../../lib/net/identity.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs `body` with a fresh temporary folder, removed afterwards. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fedgpu_identity_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a key file with the given mode (set explicitly, whatever the umask). */
async function writeKeyFile(path: string, text: string, mode = 0o600): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
}

function keyFileText(fields: Record<string, unknown>): string {
  return JSON.stringify({ format: "fedgpu-key", version: 1, ...fields });
}

Deno.test("loadOrCreateKeyFile() creates a 0600 key file, and its folders, on first use", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "nested", "folders", "server_key.json");
    const { key, created } = await loadOrCreateKeyFile(path);
    assert.equal(created, true);
    assert.ok(key instanceof StaticKeyPair);
    const info = await Deno.stat(path);
    assert.ok(info.isFile);
    assert.equal(info.mode! & 0o777, 0o600);
    const stored = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(stored, {
      format: "fedgpu-key",
      version: 1,
      publicKey: hex(key.publicKey),
      secretKey: hex(key.secretKey),
    });
  });
});

Deno.test("loadOrCreateKeyFile() loads the same key the second time", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "key.json");
    const first = await loadOrCreateKeyFile(path);
    const second = await loadOrCreateKeyFile(path);
    assert.equal(second.created, false);
    assert.equal(second.key.fingerprint, first.key.fingerprint);
    assert.deepEqual(second.key.publicKey, first.key.publicKey);
    assert.deepEqual(second.key.secretKey, first.key.secretKey);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  });
});

for (const mode of [0o644, 0o640, 0o604]) {
  Deno.test(
    `loadOrCreateKeyFile() refuses a key file of mode ${mode.toString(8)} with a KeyFileError`,
    async () => {
      await withTempDir(async (dir) => {
        const path = join(dir, "key.json");
        await loadOrCreateKeyFile(path);
        const before = await Deno.readTextFile(path);
        await Deno.chmod(path, mode);
        await assert.rejects(loadOrCreateKeyFile(path), (error: unknown) => {
          assert.ok(error instanceof KeyFileError, `Expected a KeyFileError, got ${error}`);
          assert.match(error.message, /chmod 600/);
          assert.ok(error.message.includes(path), error.message);
          assert.ok(error.message.includes(mode.toString(8)), error.message);
          return true;
        });
        // Refused, not replaced.
        assert.equal(await Deno.readTextFile(path), before);
      });
    },
  );
}

const other = StaticKeyPair.generate();
const mine = StaticKeyPair.generate();
const MALFORMED: { what: string; text: string; message: RegExp }[] = [
  { what: "text that is not JSON", text: "{not json", message: /is not JSON/ },
  { what: "an empty file", text: "", message: /is not JSON/ },
  { what: "JSON null", text: "null", message: /not a fedgpu key file/ },
  {
    what: "another format",
    text: keyFileText({ format: "ssh-key", publicKey: hex(mine.publicKey) }),
    message: /not a fedgpu key file of version 1/,
  },
  {
    what: "another version",
    text: keyFileText({ version: 2, secretKey: hex(mine.secretKey) }),
    message: /not a fedgpu key file of version 1/,
  },
  {
    what: "no secret key",
    text: keyFileText({ publicKey: hex(mine.publicKey) }),
    message: /no valid secret key/,
  },
  {
    what: "a secret key that is not 64 hex digits",
    text: keyFileText({ secretKey: "zz" + hex(mine.secretKey).slice(2), publicKey: "" }),
    message: /no valid secret key/,
  },
  {
    what: "a short public key",
    text: keyFileText({ secretKey: hex(mine.secretKey), publicKey: hex(mine.publicKey).slice(2) }),
    message: /no valid public key/,
  },
  {
    what: "a public key that does not match the secret key",
    text: keyFileText({ secretKey: hex(mine.secretKey), publicKey: hex(other.publicKey) }),
    message: /does not match/,
  },
];

for (const { what, text, message } of MALFORMED) {
  Deno.test(`loadOrCreateKeyFile() refuses a key file holding ${what}`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "key.json");
      await writeKeyFile(path, text);
      await assert.rejects(loadOrCreateKeyFile(path), (error: unknown) => {
        assert.ok(error instanceof KeyFileError, `Expected a KeyFileError, got ${error}`);
        assert.match(error.message, message);
        assert.ok(error.message.includes(path), error.message);
        assert.ok(!error.message.includes(hex(mine.secretKey)), "The message shows the secret");
        return true;
      });
      assert.equal(await Deno.readTextFile(path), text);
    });
  });
}

Deno.test("fingerprint() is SHA256: and the unpadded base64 of the key's SHA-256", async () => {
  const keys = [
    new Uint8Array(32),
    Uint8Array.from({ length: 32 }, (_, i) => i),
    StaticKeyPair.generate().publicKey,
  ];
  for (const publicKey of keys) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", publicKey.slice()));
    const base64 = btoa(String.fromCharCode(...digest));
    assert.ok(base64.endsWith("="), "A 32-byte digest pads its base64 with one =");
    const expected = "SHA256:" + base64.slice(0, -1);
    assert.equal(fingerprint(publicKey), expected);
    assert.equal(expected.length, "SHA256:".length + 43);
  }
  const key = StaticKeyPair.generate();
  assert.equal(key.fingerprint, fingerprint(key.publicKey));
});

Deno.test("StaticKeyPair checks its keys", () => {
  const key = StaticKeyPair.generate();
  assert.deepEqual(new StaticKeyPair(key.secretKey).publicKey, key.publicKey);
  assert.deepEqual(new StaticKeyPair(key.secretKey, key.publicKey).publicKey, key.publicKey);
  assert.throws(() => new StaticKeyPair(new Uint8Array(31)), RangeError);
  assert.throws(() => new StaticKeyPair(key.secretKey, other.publicKey), RangeError);
  assert.notDeepEqual(StaticKeyPair.generate().secretKey, key.secretKey);
});

Deno.test("StaticKeyPair.secretKey is a copy, and wipe() zeroes the key", () => {
  const key = StaticKeyPair.generate();
  const copy = key.secretKey;
  copy.fill(0);
  assert.notDeepEqual(key.secretKey, copy);
  key.wipe();
  assert.deepEqual(key.secretKey, new Uint8Array(32));
});

Deno.test("StaticKeyPair never shows its secret in String(), JSON.stringify() or Deno.inspect()", () => {
  const key = StaticKeyPair.generate();
  const secret = hex(key.secretKey);
  const shown = [
    String(key),
    `${key}`,
    JSON.stringify(key),
    JSON.stringify({ nested: [key] }),
    Deno.inspect(key),
    Deno.inspect({ nested: { key } }),
    Deno.inspect(key, { showHidden: true, getters: true, depth: Infinity }),
    Deno.inspect([key], { colors: true, compact: false }),
  ];
  for (const text of shown) {
    assert.ok(!text.includes(secret), `The secret shows in ${text}`);
    assert.ok(text.includes(key.fingerprint), `The fingerprint is missing from ${text}`);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(key)), { fingerprint: key.fingerprint });
  assert.deepEqual(Object.keys(key), ["publicKey"]);
});

Deno.test("StaticKeyPair never shows its secret in console output", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fedgpu_identity_" });
  try {
    const identity = new URL("../../lib/net/identity.ts", import.meta.url).href;
    const script = join(dir, "print_key.ts");
    const secretPath = join(dir, "secret.hex");
    await Deno.writeTextFile(
      script,
      `import { StaticKeyPair } from ${JSON.stringify(identity)};
const key = StaticKeyPair.generate();
const hex = Array.from(key.secretKey, (b) => b.toString(16).padStart(2, "0")).join("");
await Deno.writeTextFile(Deno.args[0], hex);
console.log(key);
console.log("%o %O %s", key, key, key);
console.log({ nested: { key } });
console.info([key]);
console.dir(key, { depth: 10, showHidden: true });
console.warn(key);
console.error("fingerprint", key.fingerprint);
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-write",
        "--config",
        fileURLToPath(new URL("../../deno.json", import.meta.url)),
        script,
        secretPath,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const secret = (await Deno.readTextFile(secretPath)).trim();
    assert.equal(secret.length, 64);
    const fingerprintLine = stderr.match(/fingerprint (SHA256:\S+)/);
    assert.ok(fingerprintLine, stderr);
    const printed = fingerprintLine[1]!;
    for (const text of [stdout, stderr]) {
      assert.ok(!text.toLowerCase().includes(secret), `The secret shows in ${text}`);
    }
    // Every console call above printed the fingerprint instead: seven on stdout, one on stderr.
    assert.equal(stdout.split(printed).length - 1, 7, stdout);
    assert.equal(stderr.split(printed).length - 1, 2, stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
