// matmul.wgsl: tiled matrix product with a fused bias and relu epilogue.
//
//   C (m, n) = op(A) (m, k) · op(B) (k, n) [+ bias (n)] [then relu]
//
// op(A) is A (m, k) row-major, or Aᵀ of A stored (k, m) when TRANS_A; likewise op(B) is B (k, n)
// or Bᵀ of B stored (n, k) when TRANS_B. Every matrix is row-major and starts at an element
// offset into its buffer, so weights and gradients can live inside one flat parameter buffer.
// A dense layer uses it three ways: forward Y = X W + b (relu), input gradient dX = dY Wᵀ
// (TRANS_B), weight gradient dW = Xᵀ dY (TRANS_A). Shapes need not be multiples of the tile.
//
// Bindings (group 0):
//   0  dims  uniform        Dims (sizes and element offsets)
//   1  a     storage, read  array<f32>
//   2  b     storage, read  array<f32>
//   3  bias  storage, read  array<f32>   (read only when HAS_BIAS)
//   4  c     storage, rw    array<f32>   (overwritten)
// Overrides: TRANS_A, TRANS_B, HAS_BIAS, RELU.
// Dispatch: (ceil(n / 16), ceil(m / 16)) workgroups of 16x16; one output element per invocation.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override RELU: bool = false;

struct Dims {
  m: u32,
  n: u32,
  k: u32,
  a_off: u32,
  b_off: u32,
  bias_off: u32,
  c_off: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 16u;
var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

fn load_a(row: u32, col: u32) -> f32 {
  if (row >= dims.m || col >= dims.k) { return 0.0; }
  if (TRANS_A) { return a[dims.a_off + col * dims.m + row]; }
  return a[dims.a_off + row * dims.k + col];
}

fn load_b(row: u32, col: u32) -> f32 {
  if (row >= dims.k || col >= dims.n) { return 0.0; }
  if (TRANS_B) { return b[dims.b_off + col * dims.k + row]; }
  return b[dims.b_off + row * dims.n + col];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wg.y * TILE + lid.y;
  let col = wg.x * TILE + lid.x;
  var sum = 0.0;
  let tiles = (dims.k + TILE - 1u) / TILE;
  for (var t = 0u; t < tiles; t++) {
    tile_a[lid.y][lid.x] = load_a(row, t * TILE + lid.x);
    tile_b[lid.y][lid.x] = load_b(t * TILE + lid.y, col);
    workgroupBarrier();
    for (var i = 0u; i < TILE; i++) {
      sum += tile_a[lid.y][i] * tile_b[i][lid.x];
    }
    workgroupBarrier();
  }
  if (row < dims.m && col < dims.n) {
    if (HAS_BIAS) { sum += bias[dims.bias_off + col]; }
    if (RELU) { sum = select(0.0, sum, sum > 0.0); }
    c[dims.c_off + row * dims.n + col] = sum;
  }
}
