import assert from "node:assert/strict";
import { join } from "node:path";
import { StaticKeyPair } from "../../lib/net/identity.ts";
import { KeyFileError, loadOrCreateKeyFile } from "../../lib/net/key_file.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs `body` with a fresh temporary folder, removed afterwards. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fedgpu_key_file_" });
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
