// gather.wgsl: copies a batch of examples, chosen by index, into contiguous batch buffers, so
// the data stays on the GPU and a batch is an index range of the epoch's order.
//
//   xb[r, f] = x[order[start + r], f];  yb[r] = y[order[start + r]]     r < rows, f < features
//
// Bindings (group 0):
//   0  dims   uniform        Dims { rows, features, start }
//   1  x      storage, read  array<f32>   (n, features)
//   2  y      storage, read  array<u32>   (n)
//   3  order  storage, read  array<u32>   (n) the epoch's permutation
//   4  xb     storage, rw    array<f32>   (rows, features)
//   5  yb     storage, rw    array<u32>   (rows)
// Dispatch: (min(g, 65535), ceil(g / 65535)) workgroups of 256, g = ceil(rows * features / 256).

struct Dims {
  rows: u32,
  features: u32,
  start: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> xb: array<f32>;
@group(0) @binding(5) var<storage, read_write> yb: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i >= dims.rows * dims.features) { return; }
  let r = i / dims.features;
  let f = i % dims.features;
  let j = order[dims.start + r];
  xb[i] = x[j * dims.features + f];
  if (f == 0u) { yb[r] = y[j]; }
}
