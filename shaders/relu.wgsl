// relu.wgsl: the relu of a standalone layer, its backward pass, and the in-place mask that a
// dense layer with a fused relu applies to its output gradient.
//
//   forward:   y[i] = x[i] > 0 ? x[i] : 0
//   backward:  dx[i] = y[i] > 0 ? dy[i] : 0
//   mask:      dy[i] = y[i] > 0 ? dy[i] : 0       (in place)
//                                                  for i < count
// Bindings (group 0) of `forward`:   0 dims uniform, 1 x read, 4 y rw
// Bindings (group 0) of `backward`:  0 dims uniform, 2 y read, 3 dy read, 5 dx rw
// Bindings (group 0) of `mask`:      0 dims uniform, 2 y read, 6 dy rw
// All arrays are array<f32> of `count` values; dims is Dims { count }.
// Dispatch: (min(g, 65535), ceil(g / 65535)) workgroups of 256, g = ceil(count / 256).

struct Dims {
  count: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y_in: array<f32>;
@group(0) @binding(3) var<storage, read> dy_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> y_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> dy_inout: array<f32>;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return gid.x + gid.y * groups.x * 256u;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = index(gid, groups);
  if (i >= dims.count) { return; }
  y_out[i] = select(0.0, x[i], x[i] > 0.0);
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = index(gid, groups);
  if (i >= dims.count) { return; }
  dx_out[i] = select(0.0, dy_in[i], y_in[i] > 0.0);
}

@compute @workgroup_size(256)
fn mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = index(gid, groups);
  if (i >= dims.count) { return; }
  if (!(y_in[i] > 0.0)) { dy_inout[i] = 0.0; }
}
