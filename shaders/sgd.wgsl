// sgd.wgsl: one SGD step with momentum and weight decay, PyTorch's formulation.
//
//   g = grad[i] + weight_decay * p[i]
//   v[i] = momentum * v[i] + g;  p[i] -= lr * v[i]     (when MOMENTUM)
//   p[i] -= lr * g                                       (otherwise)
//
// Bindings (group 0):
//   0  dims      uniform        Dims { count, lr, momentum, weight_decay }
//   1  params    storage, rw    array<f32>   (count)
//   2  grads     storage, read  array<f32>   (count)
//   3  velocity  storage, rw    array<f32>   (count; bound but untouched without MOMENTUM)
// Overrides: MOMENTUM.
// Dispatch: (min(g, 65535), ceil(g / 65535)) workgroups of 256, g = ceil(count / 256).

override MOMENTUM: bool = false;

struct Dims {
  count: u32,
  lr: f32,
  momentum: f32,
  weight_decay: f32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i >= dims.count) { return; }
  let g = grads[i] + dims.weight_decay * params[i];
  if (MOMENTUM) {
    let v = dims.momentum * velocity[i] + g;
    velocity[i] = v;
    params[i] -= dims.lr * v;
  } else {
    params[i] -= dims.lr * g;
  }
}
