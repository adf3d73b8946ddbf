// sgd.wgsl: one SGD step with momentum and weight decay, PyTorch's formulation, and FedProx's
// proximal term (Li et al., MLSys 2020, eq. 2).
//
//   g = grad[i] + weight_decay * p[i]  (+ mu * (p[i] - anchor[i])  when PROXIMAL)
//   v[i] = momentum * v[i] + g;  p[i] -= lr * v[i]     (when MOMENTUM)
//   p[i] -= lr * g                                       (otherwise)
//
// Bindings (group 0):
//   0  dims      uniform        Dims { count, lr, momentum, weight_decay, mu }
//   1  params    storage, rw    array<f32>   (count)
//   2  grads     storage, read  array<f32>   (count)
//   3  velocity  storage, rw    array<f32>   (count; bound but untouched without MOMENTUM)
//   4  anchor    storage, read  array<f32>   (count; the parameters training started from;
//                                             bound but unread without PROXIMAL)
// Overrides: MOMENTUM, PROXIMAL.
// Dispatch: (min(g, 65535), ceil(g / 65535)) workgroups of 256, g = ceil(count / 256).

override MOMENTUM: bool = false;
override PROXIMAL: bool = false;

struct Dims {
  count: u32,
  lr: f32,
  momentum: f32,
  weight_decay: f32,
  mu: f32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;
@group(0) @binding(4) var<storage, read> anchor: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i >= dims.count) { return; }
  var g = grads[i] + dims.weight_decay * params[i];
  if (PROXIMAL) {
    g += dims.mu * (params[i] - anchor[i]);
  }
  if (MOMENTUM) {
    let v = dims.momentum * velocity[i] + g;
    velocity[i] = v;
    params[i] -= dims.lr * v;
  } else {
    params[i] -= dims.lr * g;
  }
}
