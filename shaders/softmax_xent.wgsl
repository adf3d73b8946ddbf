// softmax_xent.wgsl: fused, numerically stable softmax cross-entropy on logits, with its
// gradient and the batch's loss sum and correct count.
//
//   per row i:  lse = max(z) + log(sum(exp(z - max(z))))
//               loss_i = lse - z[label_i];  correct_i = argmax(z) == label_i (first max wins)
//               dz[i, c] = (exp(z[i, c] - lse) - (c == label_i)) / rows     (when WITH_GRAD)
//   stats[2 * slot] = sum of loss_i;  stats[2 * slot + 1] = sum of correct_i
//
// Bindings (group 0):
//   0  dims    uniform        Dims { rows, classes, slot }
//   1  logits  storage, read  array<f32>   (rows, classes)
//   2  labels  storage, read  array<u32>   (rows)
//   3  dz      storage, rw    array<f32>   (rows, classes), written when WITH_GRAD
//   4  stats   storage, rw    array<f32>   two floats per slot
// Overrides: WITH_GRAD.
// Dispatch: one workgroup of 64; invocation t handles rows t, t + 64, ...; a tree reduction in
// workgroup memory sums the rows' losses and correct counts.

override WITH_GRAD: bool = true;

struct Dims {
  rows: u32,
  classes: u32,
  slot: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

const THREADS: u32 = 64u;
var<workgroup> loss_part: array<f32, 64>;
var<workgroup> correct_part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32) {
  var loss = 0.0;
  var correct = 0.0;
  let k = dims.classes;
  for (var i = t; i < dims.rows; i += THREADS) {
    let row = i * k;
    let label = labels[i];
    var best = logits[row];
    var argmax = 0u;
    for (var c = 1u; c < k; c++) {
      let z = logits[row + c];
      if (z > best) {
        best = z;
        argmax = c;
      }
    }
    var sum = 0.0;
    for (var c = 0u; c < k; c++) {
      sum += exp(logits[row + c] - best);
    }
    let lse = best + log(sum);
    loss += lse - logits[row + label];
    if (argmax == label) { correct += 1.0; }
    if (WITH_GRAD) {
      let scale = 1.0 / f32(dims.rows);
      for (var c = 0u; c < k; c++) {
        let p = exp(logits[row + c] - lse);
        dz[row + c] = (p - select(0.0, 1.0, c == label)) * scale;
      }
    }
  }
  loss_part[t] = loss;
  correct_part[t] = correct;
  workgroupBarrier();
  for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
    if (t < stride) {
      loss_part[t] += loss_part[t + stride];
      correct_part[t] += correct_part[t + stride];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    stats[2u * dims.slot] = loss_part[0];
    stats[2u * dims.slot + 1u] = correct_part[0];
  }
}
