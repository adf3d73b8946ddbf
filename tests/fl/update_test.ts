import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  applyPipeline,
  ClipStage,
  computeDelta,
  createPipeline,
  invertPipeline,
  l2Norm,
  Rng,
} from "../../mod.ts";

function norm64(values: Float32Array): number {
  let s = 0;
  for (const v of values) s += v * v;
  return Math.sqrt(s);
}

Deno.test("computeDelta() is local minus global in float32", () => {
  const local = new Float32Array([1.5, -2, 3]);
  const global = new Float32Array([0.5, 1, 3]);
  deepStrictEqual(computeDelta(local, global), new Float32Array([1, -3, 0]));
  throws(() => computeDelta(local, new Float32Array(2)), RangeError);
});

Deno.test("clip scales long updates to norm S, keeps their direction, leaves short ones alone", () => {
  const rng = new Rng(1);
  for (const scale of [0.01, 1, 100]) {
    const update = Float32Array.from({ length: 101 }, () => rng.normal() * scale);
    const before = update.slice();
    const norm = norm64(before);
    strictEqual(l2Norm(before), norm);
    const clipped = new ClipStage(1.5).apply(update);
    if (norm <= 1.5) {
      deepStrictEqual(clipped, before);
    } else {
      ok(Math.abs(norm64(clipped) - 1.5) <= 1.5e-6, `norm ${norm64(clipped)}`);
      for (let i = 0; i < before.length; i++) {
        ok(Math.abs(clipped[i]! - before[i]! * 1.5 / norm) <= 1e-6 * Math.abs(before[i]!) + 1e-12);
      }
    }
    // The server accepts what the client clipped.
    new ClipStage(1.5).invert(clipped);
  }
});

Deno.test("the server refuses an update whose norm exceeds the clip bound", () => {
  const stages = createPipeline([{ id: "clip", params: [1] }]);
  const long = new Float32Array([3, 4]);
  throws(() => invertPipeline(stages, ["clip"], long), /L2 norm 5 exceeds the clip bound 1/);
  throws(() => invertPipeline(stages, [], applyPipeline(stages, long)), /requires \[clip\]/);
  throws(() => invertPipeline([], ["clip"], long), /went through stages \[clip\]/);
  const nan = new Float32Array([NaN, 0]);
  throws(() => invertPipeline(stages, ["clip"], nan), RangeError);
});

Deno.test("createPipeline() refuses unknown, repeated or malformed stages", () => {
  throws(() => createPipeline([{ id: "zip", params: [] }]), /Unknown update stage "zip"/);
  throws(
    () => createPipeline([{ id: "clip", params: [1] }, { id: "clip", params: [1] }]),
    /appears twice/,
  );
  throws(() => createPipeline([{ id: "clip", params: [] }]), /takes 1 finite parameters/);
  throws(() => createPipeline([{ id: "clip", params: [-1] }]), /Clip norm must be positive/);
  throws(() => createPipeline([{ id: "constructor", params: [] }]), /Unknown update stage/);
});
