import {
  deepStrictEqual,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import { CipherState } from "../../lib/net/noise/cipher_state.ts";
import { dh, generateKeyPair, hkdf, type KeyPair, MAX_NONCE } from "../../lib/net/noise/crypto.ts";
import { HandshakeError, type HandshakeErrorCode } from "../../lib/net/noise/errors.ts";
import { HandshakeState, type HandshakeStateOptions } from "../../lib/net/noise/handshake_state.ts";
import {
  handshakePattern,
  parseProtocolName,
  PATTERN_NAMES,
} from "../../lib/net/noise/patterns.ts";
import { SymmetricState } from "../../lib/net/noise/symmetric_state.ts";
import { loadVectorFile, runVector } from "../../lib/net/noise/vectors.ts";

const VECTORS = new URL(
  "../testdata/noise/cacophony_25519_aesgcm_sha256.json",
  import.meta.url,
);
const EMPTY: Uint8Array = new Uint8Array(0);

/** Checks that `error` is a HandshakeError with `code`. */
function isHandshakeError(code: HandshakeErrorCode): (error: unknown) => boolean {
  return (error) => {
    ok(error instanceof HandshakeError, `expected a HandshakeError, got ${error}`);
    strictEqual(error.name, "HandshakeError");
    strictEqual(error.code, code, error.message);
    return true;
  };
}

/** HKDF of Noise section 4.3 as a chain of WebCrypto HMAC-SHA256 calls. */
async function webCryptoHkdf(ck: Uint8Array, ikm: Uint8Array, n: number): Promise<Uint8Array[]> {
  async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
    const imported = await crypto.subtle.importKey(
      "raw",
      key.slice(),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return new Uint8Array(await crypto.subtle.sign("HMAC", imported, data.slice()));
  }
  const tempKey = await hmac(ck, ikm);
  const outputs: Uint8Array[] = [];
  let previous = EMPTY;
  for (let i = 1; i <= n; i++) {
    previous = await hmac(tempKey, new Uint8Array([...previous, i]));
    outputs.push(previous);
  }
  return outputs;
}

/** A pair of HandshakeStates for `pattern` with fresh keys, each given what the pattern needs. */
function pair(pattern: string, prologue = EMPTY): [HandshakeState, HandshakeState, KeyPair[]] {
  const { initiatorPreMessage, responderPreMessage, messages } = handshakePattern(pattern);
  const sends = (initiator: boolean) =>
    messages.filter((_, i) => (i % 2 === 0) === initiator).flat().includes("s");
  const keys = [generateKeyPair(), generateKeyPair()];
  const [init, resp] = keys as [KeyPair, KeyPair];
  const options = (initiator: boolean): HandshakeStateOptions => {
    const [local, remote] = initiator ? [init, resp] : [resp, init];
    const [localPre, remotePre] = initiator
      ? [initiatorPreMessage, responderPreMessage]
      : [responderPreMessage, initiatorPreMessage];
    return {
      pattern,
      initiator,
      prologue,
      s: localPre.includes("s") || sends(initiator) ? local : undefined,
      rs: remotePre.includes("s") ? remote.publicKey : undefined,
    };
  };
  return [new HandshakeState(options(true)), new HandshakeState(options(false)), keys];
}

/** Runs the handshake between the two states to completion. */
async function complete(initiator: HandshakeState, responder: HandshakeState): Promise<void> {
  for (let i = 0; !initiator.isComplete(); i++) {
    const [writer, reader] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
    await reader.readMessage(await writer.writeMessage(new Uint8Array([i])));
  }
}

/** Asserts that every step of a dead handshake throws `state`. */
async function assertDead(state: HandshakeState): Promise<void> {
  strictEqual(state.status, "failed");
  await rejects(state.writeMessage(), isHandshakeError("state"));
  await rejects(state.readMessage(new Uint8Array(64)), isHandshakeError("state"));
  throws(() => state.split(), isHandshakeError("state"));
  throws(() => state.handshakeHash, isHandshakeError("state"));
}

// --- Test vectors -------------------------------------------------------------------------------

const vectors = await loadVectorFile(VECTORS);

Deno.test("the vector file holds every supported pattern", () => {
  deepStrictEqual(
    vectors.map((vector) => parseProtocolName(vector.protocol_name).name).sort(),
    [...PATTERN_NAMES].sort(),
  );
});
for (const vector of vectors) {
  Deno.test(vector.protocol_name, () => runVector(vector));
}

// --- Crypto functions ---------------------------------------------------------------------------

Deno.test("hkdf() matches a WebCrypto HMAC chain for 2 and 3 outputs", async () => {
  const ck = crypto.getRandomValues(new Uint8Array(32));
  for (const ikm of [EMPTY, crypto.getRandomValues(new Uint8Array(32))]) {
    for (const n of [2, 3] as const) {
      deepStrictEqual(hkdf(ck, ikm, n), await webCryptoHkdf(ck, ikm, n));
    }
  }
});

Deno.test("hkdf() rejects bad sizes and output counts", () => {
  throws(() => hkdf(new Uint8Array(31), EMPTY, 2), RangeError);
  throws(() => hkdf(new Uint8Array(32), new Uint8Array(5), 2), RangeError);
  throws(() => hkdf(new Uint8Array(32), EMPTY, 4 as 2), RangeError);
});

Deno.test("dh() rejects an all-zero output from a low-order public key", () => {
  const keyPair = generateKeyPair();
  const one = new Uint8Array(32);
  one[0] = 1;
  for (const lowOrder of [new Uint8Array(32), one]) {
    throws(() => dh(keyPair, lowOrder), isHandshakeError("bad-key"));
  }
  throws(() => dh(keyPair, new Uint8Array(31)), RangeError);
});

// --- CipherState --------------------------------------------------------------------------------

Deno.test("CipherState refuses to use the reserved nonce 2^64-1", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sender = new CipherState();
  const receiver = new CipherState();
  sender.initializeKey(key);
  receiver.initializeKey(key);
  sender.setNonce(MAX_NONCE - 1n);
  receiver.setNonce(MAX_NONCE - 1n);
  const last = await sender.encryptWithAd(EMPTY, new Uint8Array([7]));
  strictEqual(sender.nonce, MAX_NONCE);
  await rejects(
    sender.encryptWithAd(EMPTY, new Uint8Array([8])),
    isHandshakeError("nonce-exhausted"),
  );
  deepStrictEqual(await receiver.decryptWithAd(EMPTY, last), new Uint8Array([7]));
  await rejects(receiver.decryptWithAd(EMPTY, last), isHandshakeError("nonce-exhausted"));
});

Deno.test("CipherState.setNonce() takes bigints and numbers in range only", () => {
  const state = new CipherState();
  state.setNonce(5);
  strictEqual(state.nonce, 5n);
  state.setNonce(MAX_NONCE);
  strictEqual(state.nonce, MAX_NONCE);
  throws(() => state.setNonce(-1), RangeError);
  throws(() => state.setNonce(1.5), RangeError);
  throws(() => state.setNonce(MAX_NONCE + 1n), RangeError);
});

Deno.test("CipherState.decryptWithAd() keeps the nonce on failure, as section 5.1 asks", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sender = new CipherState();
  const receiver = new CipherState();
  sender.initializeKey(key);
  receiver.initializeKey(key);
  const ad = new Uint8Array([1, 2]);
  const message = await sender.encryptWithAd(ad, new Uint8Array([3]));
  const forged = message.slice();
  forged[0]! ^= 1;
  await rejects(receiver.decryptWithAd(ad, forged), isHandshakeError("decrypt"));
  await rejects(receiver.decryptWithAd(EMPTY, message), isHandshakeError("decrypt"));
  strictEqual(receiver.nonce, 0n);
  deepStrictEqual(await receiver.decryptWithAd(ad, message), new Uint8Array([3]));
  strictEqual(receiver.nonce, 1n);
});

Deno.test("CipherState without a key passes bytes through", async () => {
  const state = new CipherState();
  strictEqual(state.hasKey(), false);
  deepStrictEqual(await state.encryptWithAd(EMPTY, new Uint8Array([1, 2])), new Uint8Array([1, 2]));
  strictEqual(state.nonce, 0n);
});

Deno.test("CipherState enforces the 65535-byte message limit both ways", async () => {
  const state = new CipherState();
  state.initializeKey(new Uint8Array(32));
  strictEqual((await state.encryptWithAd(EMPTY, new Uint8Array(65519))).length, 65535);
  await rejects(
    state.encryptWithAd(EMPTY, new Uint8Array(65520)),
    isHandshakeError("message-too-large"),
  );
  await rejects(
    state.decryptWithAd(EMPTY, new Uint8Array(65536)),
    isHandshakeError("message-too-large"),
  );
  await rejects(
    state.decryptWithAd(EMPTY, new Uint8Array(15)),
    isHandshakeError("message-too-short"),
  );
});

Deno.test("CipherState.rekey() sets k to the first 32 bytes of ENCRYPT(k, 2^64-1, '', zeros)", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const imported = await crypto.subtle.importKey("raw", key.slice(), "AES-GCM", false, ["encrypt"]);
  const iv = new Uint8Array([0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]);
  const block = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, imported, new Uint8Array(32));
  const expected = new CipherState();
  expected.initializeKey(new Uint8Array(block).slice(0, 32));

  const state = new CipherState();
  state.initializeKey(key);
  state.setNonce(3);
  await state.rekey();
  strictEqual(state.nonce, 3n);
  expected.setNonce(3);
  const plaintext = new Uint8Array([9, 9, 9]);
  deepStrictEqual(
    await state.encryptWithAd(EMPTY, plaintext),
    await expected.encryptWithAd(EMPTY, plaintext),
  );
  await rejects(new CipherState().rekey(), isHandshakeError("state"));
});

Deno.test("CipherState.destroy() makes every later call throw state", async () => {
  const state = new CipherState();
  state.initializeKey(new Uint8Array(32));
  state.destroy();
  strictEqual(state.hasKey(), false);
  await rejects(state.encryptWithAd(EMPTY, EMPTY), isHandshakeError("state"));
  await rejects(state.decryptWithAd(EMPTY, new Uint8Array(16)), isHandshakeError("state"));
  throws(() => state.initializeKey(new Uint8Array(32)), isHandshakeError("state"));
});

// --- SymmetricState -----------------------------------------------------------------------------

Deno.test("SymmetricState pads protocol names up to 32 bytes and hashes longer ones", () => {
  const short = "Noise_XX_25519_AESGCM_SHA256";
  const padded = new Uint8Array(32);
  padded.set(new TextEncoder().encode(short));
  deepStrictEqual(new SymmetricState(short).getHandshakeHash(), padded);
  const long = "Noise_XXfallback+psk0_25519_AESGCM_SHA256";
  deepStrictEqual(
    new SymmetricState(long).getHandshakeHash(),
    sha256(new TextEncoder().encode(long)),
  );
});

Deno.test("SymmetricState.mixKeyAndHash() follows HKDF with three outputs", async () => {
  const name = "Noise_NNpsk0_25519_AESGCM_SHA256";
  const h0 = new SymmetricState(name).getHandshakeHash();
  const ikm = crypto.getRandomValues(new Uint8Array(32));
  const [, tempH, tempK] = await webCryptoHkdf(h0, ikm, 3) as Uint8Array[];

  const state = new SymmetricState(name);
  state.mixKeyAndHash(ikm);
  deepStrictEqual(state.getHandshakeHash(), sha256(new Uint8Array([...h0, ...tempH!])));
  const h1 = state.getHandshakeHash();
  const reference = new CipherState();
  reference.initializeKey(tempK);
  const plaintext = new Uint8Array([5, 6]);
  deepStrictEqual(
    await state.encryptAndHash(plaintext),
    await reference.encryptWithAd(h1, plaintext),
  );
});

// --- HandshakeState -----------------------------------------------------------------------------

Deno.test("HandshakeState completes every pattern with fresh keys", async () => {
  for (const name of PATTERN_NAMES) {
    const prologue = new TextEncoder().encode(name);
    const [initiator, responder, [initKey, respKey]] = pair(name, prologue);
    await complete(initiator, responder);
    deepStrictEqual(initiator.handshakeHash, responder.handshakeHash, name);
    const { oneWay, messages } = handshakePattern(name);
    const learns = (initiator: boolean) =>
      messages.filter((_, i) => (i % 2 === 0) !== initiator).flat().includes("s");
    if (learns(true)) deepStrictEqual(initiator.remoteStaticKey, respKey!.publicKey, name);
    if (learns(false)) deepStrictEqual(responder.remoteStaticKey, initKey!.publicKey, name);

    const [i1, i2] = initiator.split();
    const [r1, r2] = responder.split();
    const message = await i1.encryptWithAd(EMPTY, new Uint8Array([1]));
    deepStrictEqual(await r1.decryptWithAd(EMPTY, message), new Uint8Array([1]), name);
    if (oneWay) {
      await rejects(r2.encryptWithAd(EMPTY, EMPTY), isHandshakeError("state"), name);
    } else {
      const reply = await r2.encryptWithAd(EMPTY, new Uint8Array([2]));
      deepStrictEqual(await i2.decryptWithAd(EMPTY, reply), new Uint8Array([2]), name);
    }
    throws(() => initiator.split(), isHandshakeError("state"));
  }
});

Deno.test("HandshakeState copies key pairs and leaves the caller's secret keys intact", async () => {
  const [initiator, responder, [initKey]] = pair("XX");
  const secret = initKey!.secretKey.slice();
  await complete(initiator, responder);
  initiator.split();
  deepStrictEqual(initKey!.secretKey, secret);
});

Deno.test("HandshakeState refuses calls out of order with code state", async () => {
  const [initiator, responder] = pair("XX");
  await rejects(initiator.readMessage(new Uint8Array(32)), isHandshakeError("state"));
  await rejects(responder.writeMessage(), isHandshakeError("state"));
  throws(() => initiator.split(), isHandshakeError("state"));
  throws(() => initiator.handshakeHash, isHandshakeError("state"));
  strictEqual(initiator.status, "write");

  const first = initiator.writeMessage();
  await rejects(initiator.writeMessage(), isHandshakeError("state"));
  await responder.readMessage(await first);
  await rejects(responder.readMessage(new Uint8Array(32)), isHandshakeError("state"));
  // The refused calls did not disturb the handshake.
  await initiator.readMessage(await responder.writeMessage());
  await responder.readMessage(await initiator.writeMessage());
  strictEqual(initiator.status, "complete");
  deepStrictEqual(initiator.handshakeHash, responder.handshakeHash);
});

Deno.test("HandshakeState.readMessage() fails for good on a flipped bit", async () => {
  for (const [pattern, index] of [["NK", 0], ["XX", 1], ["XX", 2]] as const) {
    const [initiator, responder] = pair(pattern);
    let message = EMPTY;
    let reader = responder;
    for (let i = 0; i <= index; i++) {
      const [writer, next] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
      message = await writer.writeMessage(new Uint8Array([1, 2, 3]));
      reader = next;
      if (i < index) await reader.readMessage(message);
    }
    message[message.length - 1]! ^= 0x80;
    await rejects(reader.readMessage(message), isHandshakeError("decrypt"), pattern);
    await assertDead(reader);
  }
});

Deno.test("HandshakeState rejects a message over 65535 bytes", async () => {
  const [initiator, responder] = pair("NN");
  // NN message 1 is e (32 bytes) and the payload in the clear.
  await rejects(
    initiator.writeMessage(new Uint8Array(65504)),
    isHandshakeError("message-too-large"),
  );
  strictEqual(initiator.status, "write");
  strictEqual((await initiator.writeMessage(new Uint8Array(65503))).length, 65535);
  await rejects(
    responder.readMessage(new Uint8Array(65536)),
    isHandshakeError("message-too-large"),
  );
  await assertDead(responder);
});

Deno.test("HandshakeState rejects a truncated message", async () => {
  const [initiator, responder] = pair("XX");
  await responder.readMessage(await initiator.writeMessage());
  const second = await responder.writeMessage();
  // e (32), encrypted s (48), the payload's tag (16).
  strictEqual(second.length, 96);
  await rejects(
    initiator.readMessage(second.subarray(0, 95)),
    isHandshakeError("message-too-short"),
  );
  await assertDead(initiator);

  const [, nnResponder] = pair("NN");
  await rejects(nnResponder.readMessage(new Uint8Array(31)), isHandshakeError("message-too-short"));
});

Deno.test("HandshakeState fails to decrypt with a wrong remote static key in NK and IK", async () => {
  for (const pattern of ["NK", "IK"]) {
    const [, responder, keys] = pair(pattern);
    const wrong = new HandshakeState({
      pattern,
      initiator: true,
      s: pattern === "IK" ? keys[0] : undefined,
      rs: generateKeyPair().publicKey,
    });
    await rejects(responder.readMessage(await wrong.writeMessage()), isHandshakeError("decrypt"));
    await assertDead(responder);
  }
});

Deno.test("HandshakeState rejects a low-order public key (all-zero DH output)", async () => {
  const initiator = new HandshakeState({ pattern: "NK", initiator: true, rs: new Uint8Array(32) });
  await rejects(initiator.writeMessage(), isHandshakeError("bad-key"));
  await assertDead(initiator);

  const responder = new HandshakeState({ pattern: "NN", initiator: false });
  await responder.readMessage(new Uint8Array(32));
  await rejects(responder.writeMessage(), isHandshakeError("bad-key"));
  await assertDead(responder);
});

Deno.test("HandshakeState checks the keys each role needs", () => {
  const key = generateKeyPair();
  throws(() => new HandshakeState({ pattern: "XX", initiator: true }), /needs the local static/);
  throws(() => new HandshakeState({ pattern: "NK", initiator: true }), /needs the remote static/);
  throws(
    () => new HandshakeState({ pattern: "XX", initiator: true, s: key, rs: key.publicKey }),
    /does not take the remote static/,
  );
  throws(() => new HandshakeState({ pattern: "NN", initiator: true, s: key }), TypeError);
  throws(
    () => new HandshakeState({ pattern: "NK", initiator: true, rs: new Uint8Array(31) }),
    RangeError,
  );
  throws(
    () => new HandshakeState({ pattern: "ZZ", initiator: true }),
    isHandshakeError("unsupported"),
  );
});

// --- Patterns -----------------------------------------------------------------------------------

Deno.test("parseProtocolName() names all 38 patterns and rejects the rest", () => {
  strictEqual(PATTERN_NAMES.length, 38);
  for (const name of PATTERN_NAMES) {
    strictEqual(parseProtocolName(`Noise_${name}_25519_AESGCM_SHA256`), handshakePattern(name));
  }
  for (
    const [name, message] of [
      ["Noise_XX_25519_ChaChaPoly_SHA256", /Only the 25519_AESGCM_SHA256 suite/],
      ["Noise_XX_448_AESGCM_SHA256", /Only the 25519_AESGCM_SHA256 suite/],
      ["Noise_XX_25519_AESGCM_BLAKE2b", /Only the 25519_AESGCM_SHA256 suite/],
      ["Noise_XXpsk3_25519_AESGCM_SHA256", /modifiers are not supported: psk3/],
      ["Noise_XXfallback_25519_AESGCM_SHA256", /modifiers are not supported: fallback/],
      ["Noise_ZZ_25519_AESGCM_SHA256", /Unknown handshake pattern/],
      ["Noise_XX_25519_AESGCM", /Not a Noise protocol name/],
      ["Nois_XX_25519_AESGCM_SHA256", /Not a Noise protocol name/],
    ] as const
  ) {
    throws(() => parseProtocolName(name), (error) => {
      isHandshakeError("unsupported")(error);
      ok(message.test((error as Error).message), (error as Error).message);
      return true;
    });
  }
});

Deno.test("handshake patterns read as section 7 writes them", () => {
  const ik = handshakePattern("IK");
  deepStrictEqual(ik.responderPreMessage, ["s"]);
  deepStrictEqual(ik.messages, [["e", "es", "s", "ss"], ["e", "ee", "se"]]);
  deepStrictEqual(handshakePattern("X1X1").messages, [["e"], ["e", "ee", "s"], ["es", "s"], [
    "se",
  ]]);
  strictEqual(handshakePattern("X").oneWay, true);
  notDeepStrictEqual(handshakePattern("KK1"), handshakePattern("K1K"));
});
