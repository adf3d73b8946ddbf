/**
 * Parity of every WGSL kernel in `shaders/` with its CPU twin: the reference kernels of
 * `lib/nn/kernels.ts`, `Sgd` and the float64 `FedAvg`. Each case runs one kernel on its own
 * (one compute pass, then a readback), on shapes that are not multiples of the workgroup sizes,
 * and checks that nothing outside a kernel's output range is written.
 *
 * Tolerances: the kernels compute in float32, whose unit roundoff is U = 2^-24 ≈ 6e-8. A float32
 * sum of k terms is within about k·U·Σ|terms| of the exact sum (Higham, "Accuracy and Stability
 * of Numerical Algorithms", §3.1), and the float32 CPU twin is within the same bound, so two of
 * them differ by at most 2·k·U·Σ|terms|. Operations that only move or select values (relu,
 * gather) must match bit for bit.
 */

import { ok, strictEqual, throws } from "node:assert/strict";
import { FedAvg } from "../../lib/fl/strategies/fedavg.ts";
import { findAdapter, GpuRuntime, type KernelName } from "../../lib/compute/webgpu/runtime.ts";
import {
  denseBackward,
  denseForward,
  reluBackward,
  reluForward,
  softmaxCrossEntropy,
} from "../../lib/nn/kernels.ts";
import { Sgd } from "../../lib/nn/optim.ts";
import { Rng } from "../../lib/rng.ts";

/** Unit roundoff of float32. */
const U = 2 ** -24;
/** Absolute slack for results that cancel to near zero. */
const ATOL = 1e-6;
/** Written into output buffers beforehand: any element still holding it was not written. */
const SENTINEL = -1234.5;
/** Written into u32 output buffers beforehand. */
const SENTINEL_U32 = 0xdeadbeef;

type HostArray = Float32Array | Uint32Array;

/** A float field of a uniform; plain numbers are u32 fields. */
interface F32 {
  readonly f32: number;
}

/** Marks a uniform field as a float. */
function f32(value: number): F32 {
  return { f32: value };
}

/** A uniform's 32-bit words, padded to 16 bytes. */
function words(...values: readonly (number | F32)[]): ArrayBuffer {
  const buffer = new ArrayBuffer(Math.max(1, Math.ceil(values.length / 4)) * 16);
  const u32 = new Uint32Array(buffer);
  const floats = new Float32Array(buffer);
  values.forEach((value, i) => {
    if (typeof value === "number") u32[i] = value;
    else floats[i] = value.f32;
  });
  return buffer;
}

/** One dispatch of a kernel's entry point. */
interface Launch {
  kernel: KernelName;
  entry?: string;
  constants?: Record<string, boolean>;
  /** The uniform at binding 0. */
  dims: ArrayBuffer;
  /** Host arrays are uploaded and read back after the dispatch; GPU buffers are bound as-is. */
  buffers: Record<number, HostArray | GPUBuffer>;
  /** Workgroups along x and y. */
  workgroups: readonly [number, number?];
}

/** Workgroups of `size` invocations that cover `count` items. */
function groups(count: number, size: number): number {
  return Math.ceil(count / size);
}

/** `n` float32 values drawn from N(0, scale²). */
function normals(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** `length` copies of `value`. */
function filled(length: number, value = SENTINEL): Float32Array {
  return new Float32Array(length).fill(value);
}

/** `values` inside a buffer of `before + values.length + after` sentinels. */
function padded(values: Float32Array, before: number, after: number): Float32Array {
  const out = filled(before + values.length + after);
  out.set(values, before);
  return out;
}

/** A number as it is, telling -0 from 0. */
function show(value: number | undefined): string {
  return Object.is(value, -0) ? "-0" : String(value);
}

/** Asserts that `actual[from, to)` still holds sentinels. */
function assertUntouched(actual: HostArray, from: number, to: number, what: string): void {
  const sentinel = actual instanceof Float32Array ? SENTINEL : SENTINEL_U32;
  for (let i = from; i < to; i++) {
    if (actual[i] !== sentinel) {
      throw new Error(`${what}: element ${i} was written (${show(actual[i])}), expected untouched`);
    }
  }
}

/** Asserts `|actual[i] - expected[i]| <= tolerance(i)` and a finite `actual[i]` for all i. */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: (i: number) => number,
  what: string,
): void {
  strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const tol = tolerance(i);
    if (!Number.isFinite(a) || !(Math.abs(a - e) <= tol)) {
      throw new Error(`${what}: element ${i} is ${a}, expected ${e} within ${tol}`);
    }
  }
}

/** Asserts bit-for-bit equality as far as a float can tell: NaN matches NaN, 0 differs from -0. */
function assertSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      throw new Error(`${what}: element ${i} is ${show(actual[i])}, expected ${show(expected[i])}`);
    }
  }
}

/**
 * Σ|terms| of each element of `C (m, n) = op(A) op(B) [+ bias]`, for the error bound;
 * `a(i, p)` and `b(p, j)` read op(A) and op(B).
 */
function termScale(
  m: number,
  n: number,
  k: number,
  a: (i: number, p: number) => number,
  b: (p: number, j: number) => number,
  bias: (j: number) => number = () => 0,
): Float64Array {
  const scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let abs = Math.abs(bias(j));
      for (let p = 0; p < k; p++) abs += Math.abs(a(i, p) * b(p, j));
      scale[i * n + j] = abs;
    }
  }
  return scale;
}

/** The bound on |GPU − CPU| of a float32 sum of `terms` terms whose magnitudes sum to `scale`. */
function sumTolerance(terms: number, scale: number): number {
  return 2 * terms * U * scale + ATOL;
}

/** Throws on any validation, out-of-memory or internal error raised inside `body`. */
async function scoped<T>(rt: GpuRuntime, body: () => Promise<T>): Promise<T> {
  const filters: GPUErrorFilter[] = ["validation", "out-of-memory", "internal"];
  for (const filter of filters) rt.device.pushErrorScope(filter);
  const result = await Promise.allSettled([body()]);
  const errors: string[] = [];
  for (const _ of filters) {
    const error = await rt.device.popErrorScope();
    if (error !== null) errors.push(error.message);
  }
  if (errors.length > 0) throw new Error(`WebGPU reported: ${errors.join("; ")}`);
  const [settled] = result;
  if (settled!.status === "rejected") throw settled!.reason;
  return settled!.value;
}

/** Reads `like.length` values of a buffer back, typed like `like`. */
async function readBack<T extends HostArray>(
  rt: GpuRuntime,
  buffer: GPUBuffer,
  like: T,
): Promise<T> {
  const bytes = await rt.read(buffer, like.byteLength);
  return (like instanceof Float32Array ? new Float32Array(bytes) : new Uint32Array(bytes)) as T;
}

/**
 * Records one compute pass with one dispatch, submits it and reads back every host array it
 * bound, by binding number.
 */
function run(rt: GpuRuntime, launch: Launch): Promise<Map<number, HostArray>> {
  return scoped(rt, async () => {
    const { kernel, entry = "main", constants = {}, workgroups: [x, y = 1] } = launch;
    const label = `${kernel}.${entry}`;
    const owned: GPUBuffer[] = [];
    try {
      const pipeline = rt.pipeline(kernel, entry, constants);
      const dims = rt.uniform(launch.dims, `${label}.dims`);
      owned.push(dims);
      const bound: Record<number, GPUBuffer> = { 0: dims };
      const hosts: [number, HostArray][] = [];
      for (const [key, value] of Object.entries(launch.buffers)) {
        const binding = Number(key);
        if (ArrayBuffer.isView(value)) {
          const buffer = rt.upload(value, `${label}[${binding}]`);
          owned.push(buffer);
          bound[binding] = buffer;
          hosts.push([binding, value]);
        } else {
          bound[binding] = value;
        }
      }
      const group = rt.bind(pipeline, bound, label);
      const encoder = rt.device.createCommandEncoder({ label });
      const pass = encoder.beginComputePass({ label });
      rt.dispatch(pass, pipeline, group, x, y);
      pass.end();
      rt.device.queue.submit([encoder.finish()]);
      const out = new Map<number, HostArray>();
      for (const [binding, value] of hosts) {
        out.set(binding, await readBack(rt, bound[binding]!, value));
      }
      return out;
    } finally {
      for (const buffer of owned) rt.release(buffer);
    }
  });
}

/** Runs `body` with GPU buffers holding `arrays`, released afterwards. */
async function withBuffers<T>(
  rt: GpuRuntime,
  arrays: readonly HostArray[],
  body: (buffers: GPUBuffer[]) => Promise<T>,
): Promise<T> {
  const buffers = arrays.map((array, i) => rt.upload(array, `persistent[${i}]`));
  try {
    return await body(buffers);
  } finally {
    for (const buffer of buffers) rt.release(buffer);
  }
}

/** (batch, nIn, nOut) of dense layers: single examples, odd sizes, more than one tile. */
const DENSE_SHAPES: readonly (readonly [number, number, number])[] = [
  [1, 1, 1],
  [3, 7, 5],
  [1, 20, 17],
  [17, 33, 9],
  [64, 100, 50],
];

/** Element counts around the 256-wide workgroup. */
const COUNTS = [1, 255, 257, 700];

/** Random values with exact zeros, negative zeros and NaNs mixed in. */
function specials(rng: Rng, n: number): Float32Array {
  const out = normals(rng, n);
  const special = [0, -0, NaN, 1, -1];
  for (let i = 0; i < n; i += 3) out[i] = special[(i / 3) % special.length]!;
  return out;
}

/**
 * The bound on |GPU − CPU| of `lse - z` for a row of `classes` logits: the float32 sum of the
 * exponentials is within classes·U relatively (so its log within classes·U absolutely), WGSL's
 * exp and log are accurate to 3 + 2|x| ulp and 2^-21 absolutely, and `lse` and `z` are rounded
 * at their magnitudes; twice that, to spare.
 */
function rowTolerance(classes: number, lse: number, z: number): number {
  return 2 * U * (classes + 16 + 4 * (Math.abs(lse) + Math.abs(z)));
}

/** float64 log-sum-exp of row `i`. */
function logSumExp(z: Float32Array, i: number, classes: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, z[i * classes + c]!);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(z[i * classes + c]! - max);
  return max + Math.log(sum);
}

/** Runs softmax_xent on `logits` into stats slot `slot` of 3 and checks it against the CPU. */
async function checkSoftmax(
  rt: GpuRuntime,
  logits: Float32Array,
  labels: Uint32Array,
  options: { classes: number; slot: number; withGrad: boolean; what: string },
): Promise<void> {
  const { classes, slot, withGrad, what } = options;
  const rows = labels.length;
  const out = await run(rt, {
    kernel: "softmax_xent",
    constants: { WITH_GRAD: withGrad },
    dims: words(rows, classes, slot),
    buffers: { 1: logits, 2: labels, 3: filled(rows * classes + 2), 4: filled(6) },
    workgroups: [1],
  });
  const expected = new Float32Array(rows * classes);
  const { lossSum, correct } = softmaxCrossEntropy(logits, labels, expected, rows, classes);
  const stats = out.get(4)!;
  assertUntouched(stats, 0, 2 * slot, `${what} stats`);
  assertUntouched(stats, 2 * slot + 2, 6, `${what} stats`);
  strictEqual(stats[2 * slot + 1], correct, `${what} correct`);
  let lossTol = 2 * rows * U * lossSum;
  for (let i = 0; i < rows; i++) {
    const lse = logSumExp(logits, i, classes);
    lossTol += rowTolerance(classes, lse, logits[i * classes + labels[i]!]!);
  }
  assertClose([stats[2 * slot]!], [lossSum], () => lossTol + ATOL, `${what} loss`);

  const dz = out.get(3)!;
  assertUntouched(dz, rows * classes, dz.length, `${what} dz`);
  if (!withGrad) {
    assertUntouched(dz, 0, rows * classes, `${what} dz without gradient`);
    return;
  }
  // dz = (p - onehot) / rows with p = exp(z - lse): the error of z - lse carries over to p
  // relatively.
  assertClose(dz.subarray(0, rows * classes), expected, (j) => {
    const i = Math.floor(j / classes);
    const lse = logSumExp(logits, i, classes);
    const p = Math.exp(logits[j]! - lse);
    return (rowTolerance(classes, lse, logits[j]!) * p + 4 * U) / rows;
  }, `${what} dz`);
}

/**
 * Runs fedavg's accumulate over each batch of clients into one running sum, then finish, and
 * returns the new global parameters.
 */
function gpuFedAvg(
  rt: GpuRuntime,
  global: Float32Array,
  batches: readonly { updates: Float32Array[]; weights: number[] }[],
  serverLr: number,
): Promise<Float32Array> {
  const count = global.length;
  return withBuffers(rt, [new Float32Array(count)], async ([acc]) => {
    let total = 0;
    for (const { updates, weights } of batches) {
      const packed = new Float32Array(updates.length * count);
      updates.forEach((update, k) => packed.set(update, k * count));
      await run(rt, {
        kernel: "fedavg",
        entry: "accumulate",
        dims: words(count, updates.length),
        buffers: { 1: Float32Array.from(weights), 2: packed, 3: acc! },
        workgroups: [groups(count, 256)],
      });
      for (const weight of weights) total += weight;
    }
    const out = await run(rt, {
      kernel: "fedavg",
      entry: "finish",
      dims: words(count, 0, f32(serverLr / total)),
      buffers: { 3: acc!, 4: global, 5: filled(count + 4) },
      workgroups: [groups(count, 256)],
    });
    const result = out.get(5);
    ok(result instanceof Float32Array);
    assertUntouched(result, count, count + 4, "fedavg out");
    return result.subarray(0, count);
  });
}

/** The bound on |GPU − float64| of each element of FedAvg's result over these clients. */
function fedAvgTolerance(
  global: Float32Array,
  updates: readonly Float32Array[],
  weights: readonly number[],
  serverLr: number,
): (i: number) => number {
  const total = weights.reduce((a, b) => a + b, 0);
  return (i: number) => {
    let scale = 0;
    updates.forEach((update, k) => scale += weights[k]! * Math.abs(update[i]!));
    scale = Math.abs(global[i]!) + serverLr * scale / total;
    return 2 * (updates.length + 4) * U * scale + ATOL;
  };
}

const adapter = await findAdapter();
/** One device for the whole file, opened by the first test that runs and closed at exit. */
let shared: GpuRuntime | null = null;

/** Registers a test that runs on the shared runtime. */
function gpuTest(name: string, fn: (rt: GpuRuntime) => Promise<void>): void {
  Deno.test(name, async () => fn(shared ??= await GpuRuntime.create(adapter)));
}

if (adapter === null) {
  Deno.test({
    name: "WGSL kernels match their CPU twins (needs a WebGPU adapter)",
    fn() {
      console.log("WebGPU kernel parity tests skipped: no WebGPU adapter on this machine");
    },
  });
} else {
  globalThis.addEventListener("unload", () => shared?.dispose());

  gpuTest(
    "matmul kernel matches denseForward() at element offsets, with bias and relu",
    async (rt) => {
      for (const [batch, nIn, nOut] of DENSE_SHAPES) {
        for (const offset of [0, 3]) {
          for (const hasBias of [true, false]) {
            for (const relu of [false, true]) {
              const what =
                `(${batch}, ${nIn}, ${nOut}) offset ${offset} bias ${hasBias} relu ${relu}`;
              const rng = new Rng(1, [batch, nIn, nOut, offset]);
              const x = normals(rng, batch * nIn);
              // Some exact zeros, which denseForward() skips.
              for (let i = 0; i < x.length; i += 3) x[i] = i % 2 === 0 ? 0 : -0;
              const w = normals(rng, nIn * nOut);
              const b = hasBias ? normals(rng, nOut) : new Float32Array(nOut);
              // Parameters as the trainer lays them out: the weight then the bias inside one flat
              // buffer, here behind `offset + 2` other values.
              const wOff = offset + 2;
              const params = new Float32Array(wOff + nIn * nOut + nOut + 5);
              params.set(normals(rng, params.length));
              params.set(w, wOff);
              params.set(b, wOff + nIn * nOut);
              const xOff = offset;
              const cOff = 2 * offset + 1;
              const cLength = batch * nOut;
              const out = await run(rt, {
                kernel: "matmul",
                constants: { HAS_BIAS: hasBias, RELU: relu },
                dims: words(batch, nOut, nIn, xOff, wOff, wOff + nIn * nOut, cOff),
                buffers: {
                  1: padded(x, xOff, 7),
                  2: params,
                  3: params,
                  4: filled(cOff + cLength + 19),
                },
                workgroups: [groups(nOut, 16), groups(batch, 16)],
              });
              const c = out.get(4)!;
              assertUntouched(c, 0, cOff, what);
              assertUntouched(c, cOff + cLength, c.length, what);
              const expected = new Float32Array(cLength);
              denseForward(x, w, b, expected, batch, nIn, nOut, relu);
              const scale = termScale(
                batch,
                nOut,
                nIn,
                (i, p) => x[i * nIn + p]!,
                (p, j) => w[p * nOut + j]!,
                (j) => b[j]!,
              );
              // relu is 1-Lipschitz, so the bound of the sum holds after it.
              assertClose(
                c.subarray(cOff, cOff + cLength),
                expected,
                (i) => sumTolerance(nIn + 1, scale[i]!),
                what,
              );
            }
          }
        }
      }
    },
  );

  gpuTest("matmul TRANS_A, bias_grad and TRANS_B match denseBackward()", async (rt) => {
    for (const [batch, nIn, nOut] of DENSE_SHAPES) {
      for (const offset of [0, 5]) {
        const what = `(${batch}, ${nIn}, ${nOut}) offset ${offset}`;
        const rng = new Rng(2, [batch, nIn, nOut, offset]);
        const x = normals(rng, batch * nIn);
        for (let i = 1; i < x.length; i += 4) x[i] = 0;
        const w = normals(rng, nIn * nOut);
        const dy = normals(rng, batch * nOut);
        const dw = new Float32Array(nIn * nOut);
        const db = new Float32Array(nOut);
        const dx = new Float32Array(batch * nIn);
        denseBackward(x, w, dy, dx, dw, db, batch, nIn, nOut);

        // The weight and bias gradients go into one flat gradient buffer at the layer's offset.
        const wOff = offset;
        const bOff = wOff + nIn * nOut;
        const gradsLength = bOff + nOut + 11;
        const params = padded(w, wOff, nOut + 3);
        const xOff = offset + 1;
        const dyOff = 2 * offset;
        await withBuffers(rt, [filled(gradsLength)], async ([grads]) => {
          const xs = padded(x, xOff, 2);
          const dys = padded(dy, dyOff, 3);
          // dW (nIn, nOut) = Xᵀ (nIn, batch) · dY (batch, nOut), X stored (batch, nIn).
          await run(rt, {
            kernel: "matmul",
            constants: { TRANS_A: true },
            dims: words(nIn, nOut, batch, xOff, dyOff, 0, wOff),
            buffers: { 1: xs, 2: dys, 3: params, 4: grads! },
            workgroups: [groups(nOut, 16), groups(nIn, 16)],
          });
          // db (nOut) = column sums of dY (batch, nOut), dY at offset 0 as the trainer has it.
          await run(rt, {
            kernel: "bias_grad",
            dims: words(batch, nOut, bOff),
            buffers: { 1: dy, 2: grads! },
            workgroups: [groups(nOut, 64)],
          });
          const g = await readBack(rt, grads!, filled(gradsLength));
          assertUntouched(g, 0, wOff, `${what} grads`);
          assertUntouched(g, bOff + nOut, gradsLength, `${what} grads`);
          const dwScale = termScale(
            nIn,
            nOut,
            batch,
            (i, p) => x[p * nIn + i]!,
            (p, j) => dy[p * nOut + j]!,
          );
          assertClose(
            g.subarray(wOff, bOff),
            dw,
            (i) => sumTolerance(batch, dwScale[i]!),
            `${what} dW`,
          );
          const dbScale = termScale(1, nOut, batch, () => 1, (p, j) => dy[p * nOut + j]!);
          assertClose(
            g.subarray(bOff, bOff + nOut),
            db,
            (i) => sumTolerance(batch, dbScale[i]!),
            `${what} db`,
          );

          // dX (batch, nIn) = dY (batch, nOut) · Wᵀ (nOut, nIn), W stored (nIn, nOut).
          const dxOff = offset + 4;
          const out = await run(rt, {
            kernel: "matmul",
            constants: { TRANS_B: true },
            dims: words(batch, nIn, nOut, dyOff, wOff, 0, dxOff),
            buffers: { 1: dys, 2: params, 3: params, 4: filled(dxOff + batch * nIn + 6) },
            workgroups: [groups(nIn, 16), groups(batch, 16)],
          });
          const c = out.get(4)!;
          assertUntouched(c, 0, dxOff, `${what} dX`);
          assertUntouched(c, dxOff + dx.length, c.length, `${what} dX`);
          const dxScale = termScale(
            batch,
            nIn,
            nOut,
            (i, p) => dy[i * nOut + p]!,
            (p, j) => w[j * nOut + p]!,
          );
          assertClose(
            c.subarray(dxOff, dxOff + dx.length),
            dx,
            (i) => sumTolerance(nOut, dxScale[i]!),
            `${what} dX`,
          );
        });
      }
    }
  });

  gpuTest(
    "relu kernel's forward, backward and mask match reluForward() and reluBackward() exactly",
    async (rt) => {
      // A NaN is not > 0, so it maps to 0 on both sides; negative zero maps to +0, and a
      // gradient passed through keeps its sign of zero.
      for (const count of COUNTS) {
        const rng = new Rng(3, [count]);
        const x = specials(rng, count);
        const dy = specials(rng, count);
        const workgroups = [groups(count, 256)] as const;

        const forward = await run(rt, {
          kernel: "relu",
          entry: "forward",
          dims: words(count),
          buffers: { 1: x, 4: filled(count + 3) },
          workgroups,
        });
        const y = new Float32Array(count);
        reluForward(x, y, count);
        const yGpu = forward.get(4)!;
        assertSame(yGpu.subarray(0, count), y, `forward ${count}`);
        assertUntouched(yGpu, count, count + 3, `forward ${count}`);

        // The backward pass reads the forward's outputs; raw inputs exercise -0 and NaN there.
        const backward = await run(rt, {
          kernel: "relu",
          entry: "backward",
          dims: words(count),
          buffers: { 2: x, 3: dy, 5: filled(count + 3) },
          workgroups,
        });
        const dx = new Float32Array(count);
        reluBackward(x, dy, dx, count);
        const dxGpu = backward.get(5)!;
        assertSame(dxGpu.subarray(0, count), dx, `backward ${count}`);
        assertUntouched(dxGpu, count, count + 3, `backward ${count}`);

        const inPlace = padded(dy, 0, 3);
        const mask = await run(rt, {
          kernel: "relu",
          entry: "mask",
          dims: words(count),
          buffers: { 2: x, 6: inPlace },
          workgroups,
        });
        const masked = mask.get(6)!;
        assertSame(masked.subarray(0, count), dx, `mask ${count}`);
        assertUntouched(masked, count, count + 3, `mask ${count}`);
      }
    },
  );

  gpuTest(
    "softmax_xent kernel matches softmaxCrossEntropy() with and without the gradient",
    async (rt) => {
      for (const rows of [1, 7, 64, 65, 130]) {
        for (const classes of [1, 2, 10, 17]) {
          for (const withGrad of [true, false]) {
            const rng = new Rng(4, [rows, classes]);
            const logits = normals(rng, rows * classes, 3);
            const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
            const slot = (rows + classes) % 3;
            const what = `rows ${rows} classes ${classes} grad ${withGrad} slot ${slot}`;
            await checkSoftmax(rt, logits, labels, { classes, slot, withGrad, what });
          }
        }
      }
    },
  );

  gpuTest(
    "softmax_xent kernel stays finite on logits of ±1e4 and takes the first of tied maxima",
    async (rt) => {
      const rows = 70;
      const classes = 10;
      const rng = new Rng(5);
      const logits = Float32Array.from(
        { length: rows * classes },
        () => Math.round((2 * rng.float() - 1) * 1e4),
      );
      // Near ties at the top, where the float32 lse rounds most.
      for (let i = 0; i < rows; i += 5) {
        logits[i * classes + 3] = 1e4;
        logits[i * classes + 7] = 1e4 - 0.5;
      }
      // Exact ties: the first maximum is the guess.
      for (let i = 1; i < rows; i += 5) {
        logits[i * classes + 2] = 2e4;
        logits[i * classes + 6] = 2e4;
      }
      const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
      for (let i = 1; i < rows; i += 10) labels[i] = 2;
      for (let i = 6; i < rows; i += 10) labels[i] = 6;
      for (const withGrad of [true, false]) {
        const what = `large logits grad ${withGrad}`;
        await checkSoftmax(rt, logits, labels, { classes, slot: 1, withGrad, what });
      }
    },
  );

  gpuTest(
    "sgd kernel matches Sgd.step() over 3 steps, keeping the velocity on the GPU, with and without FedProx's proximal term",
    async (rt) => {
      const cases = [
        { lr: 0.05, momentum: 0, weightDecay: 0 },
        { lr: 0.05, momentum: 0, weightDecay: 5e-3 },
        { lr: 0.1, momentum: 0.9, weightDecay: 0 },
        { lr: 0.01, momentum: 0.5, weightDecay: 1e-2 },
        { lr: 0.05, momentum: 0, weightDecay: 0, proximalMu: 0.3 },
        { lr: 0.01, momentum: 0.9, weightDecay: 1e-2, proximalMu: 0.7 },
      ];
      for (const count of COUNTS) {
        for (const options of cases) {
          const what = `count ${count} ${JSON.stringify(options)}`;
          const rng = new Rng(6, [count]);
          const expected = normals(rng, count);
          const withMomentum = options.momentum > 0;
          // Without momentum the velocity is bound but must stay untouched.
          const velocityInit = withMomentum ? new Float32Array(count) : filled(count);
          const mu = options.proximalMu ?? 0;
          // The anchor is the parameters before the first step, as Sgd takes it.
          const anchor = expected.slice();
          await withBuffers(rt, [expected, velocityInit, anchor], async (
            [params, velocity, anchorBuffer],
          ) => {
            const sgd = new Sgd(count, options);
            for (let step = 0; step < 3; step++) {
              const grads = normals(rng, count);
              await run(rt, {
                kernel: "sgd",
                constants: { MOMENTUM: withMomentum, PROXIMAL: mu > 0 },
                dims: words(
                  count,
                  f32(options.lr),
                  f32(options.momentum),
                  f32(options.weightDecay),
                  f32(mu),
                ),
                buffers: { 1: params!, 2: grads, 3: velocity!, 4: anchorBuffer! },
                workgroups: [groups(count, 256)],
              });
              sgd.step(expected, grads);
            }
            const actual = await readBack(rt, params!, expected);
            // Each step rounds a few float32 operations; the coefficients are float32 on the GPU.
            assertClose(actual, expected, (i) => 1e-6 * Math.max(1, Math.abs(expected[i]!)), what);
            if (!withMomentum) {
              assertUntouched(await readBack(rt, velocity!, velocityInit), 0, count, `${what} v`);
            }
          });
        }
      }
    },
  );

  gpuTest(
    "gather kernel copies the rows named by the order, from its start, exactly",
    async (rt) => {
      const cases = [
        { n: 1, features: 1, start: 0, rows: 1 },
        { n: 37, features: 7, start: 5, rows: 29 },
        { n: 50, features: 13, start: 11, rows: 30 },
        { n: 100, features: 3, start: 99, rows: 1 },
      ];
      for (const { n, features, start, rows } of cases) {
        const what = `n ${n} features ${features} start ${start} rows ${rows}`;
        const rng = new Rng(7, [n, features]);
        const x = normals(rng, n * features);
        x[0] = -0;
        const y = Uint32Array.from({ length: n }, () => rng.int(10));
        const order = rng.permutation(n);
        const out = await run(rt, {
          kernel: "gather",
          dims: words(rows, features, start),
          buffers: {
            1: x,
            2: y,
            3: order,
            4: filled(rows * features + 5),
            5: new Uint32Array(rows + 2).fill(SENTINEL_U32),
          },
          workgroups: [groups(rows * features, 256)],
        });
        const xb = new Float32Array(rows * features);
        const yb = new Uint32Array(rows);
        for (let r = 0; r < rows; r++) {
          const j = order[start + r]!;
          xb.set(x.subarray(j * features, (j + 1) * features), r * features);
          yb[r] = y[j]!;
        }
        const xbGpu = out.get(4)!;
        const ybGpu = out.get(5)!;
        assertSame(xbGpu.subarray(0, xb.length), xb, `${what} xb`);
        assertUntouched(xbGpu, xb.length, xbGpu.length, `${what} xb`);
        assertSame(ybGpu.subarray(0, rows), yb, `${what} yb`);
        assertUntouched(ybGpu, rows, ybGpu.length, `${what} yb`);
      }
    },
  );

  gpuTest(
    "fedavg kernel's accumulate and finish match the float64 FedAvg for 1 to 8 clients",
    async (rt) => {
      for (let clients = 1; clients <= 8; clients++) {
        for (const count of COUNTS) {
          const serverLr = clients % 2 === 0 ? 1 : 0.5;
          const rng = new Rng(8, [clients, count]);
          const global = normals(rng, count);
          const updates = Array.from({ length: clients }, () => normals(rng, count, 0.1));
          const weights = updates.map(() => 1 + rng.int(600));
          const fedavg = new FedAvg({ serverLr });
          fedavg.begin(global);
          updates.forEach((update, k) => fedavg.accumulate(update, weights[k]!));
          const actual = await gpuFedAvg(rt, global, [{ updates, weights }], serverLr);
          assertClose(
            actual,
            await fedavg.finish(),
            fedAvgTolerance(global, updates, weights, serverLr),
            `clients ${clients} count ${count}`,
          );
        }
      }
    },
  );

  gpuTest(
    "fedavg kernel streams several accumulate dispatches into one running sum",
    async (rt) => {
      for (const count of COUNTS) {
        const rng = new Rng(9, [count]);
        const global = normals(rng, count);
        const updates = Array.from({ length: 11 }, () => normals(rng, count, 0.1));
        const weights = updates.map(() => 1 + rng.int(600));
        const fedavg = new FedAvg();
        fedavg.begin(global);
        updates.forEach((update, k) => fedavg.accumulate(update, weights[k]!));
        const batches = [
          { updates: updates.slice(0, 8), weights: weights.slice(0, 8) },
          { updates: updates.slice(8), weights: weights.slice(8) },
        ];
        const actual = await gpuFedAvg(rt, global, batches, 1);
        assertClose(
          actual,
          await fedavg.finish(),
          fedAvgTolerance(global, updates, weights, 1),
          `streamed count ${count}`,
        );
      }
    },
  );

  Deno.test("GpuRuntime.check() throws once the device has reported a validation error", async () => {
    // Its own device: the error poisons the runtime it happens on.
    const rt = await GpuRuntime.create(adapter);
    try {
      // A bind group without the kernel's bindings, outside any error scope.
      rt.bind(rt.pipeline("bias_grad"), {}, "incomplete");
      await rt.device.queue.onSubmittedWorkDone();
      await new Promise((resolve) => setTimeout(resolve, 0));
      throws(() => rt.check(), /WebGPU reported an error: /);
    } finally {
      rt.dispose();
    }
  });
}
