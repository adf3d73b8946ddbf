// bias_grad.wgsl: the bias gradient of a dense layer, the column sums of its output gradient.
//
//   db[o] = sum over i < rows of dy[i, o]        dy (rows, n) row-major; db (n)
//
// Bindings (group 0):
//   0  dims  uniform        Dims { rows, n, db_off }
//   1  dy    storage, read  array<f32>
//   2  db    storage, rw    array<f32>   (db[db_off + o] overwritten)
// Dispatch: ceil(n / 64) workgroups of 64; one column per invocation, summed in row order.

struct Dims {
  rows: u32,
  n: u32,
  db_off: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x;
  if (o >= dims.n) { return; }
  var sum = 0.0;
  for (var i = 0u; i < dims.rows; i++) {
    sum += dy[i * dims.n + o];
  }
  db[dims.db_off + o] = sum;
}
