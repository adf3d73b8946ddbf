import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fingerprint, StaticKeyPair } from "../../lib/net/identity.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
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
  assert.throws(
    () => new StaticKeyPair(key.secretKey, StaticKeyPair.generate().publicKey),
    RangeError,
  );
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
