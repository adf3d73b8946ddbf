// fedavg.wgsl: the FedAvg weighted reduction over K client update buffers, and the round's end.
//
//   accumulate:  acc[i] += sum over k < clients of weights[k] * updates[k * count + i]
//                (k in order, so the result does not depend on the dispatch)
//   finish:      out[i] = global[i] + scale * acc[i]       scale = serverLr / total weight
//
// Bindings (group 0) of `accumulate`:
//   0  dims     uniform        Dims { count, clients, scale }
//   1  weights  storage, read  array<f32>   (clients)
//   2  updates  storage, read  array<f32>   (clients, count) packed client buffers
//   3  acc      storage, rw    array<f32>   (count) running weighted sum
// Bindings (group 0) of `finish`:
//   0  dims     uniform        Dims
//   3  acc      storage, rw    array<f32>   (count; only read)
//   4  global_params  storage, read  array<f32>   (count)
//   5  out      storage, rw    array<f32>   (count)
// Dispatch: (min(g, 65535), ceil(g / 65535)) workgroups of 256, g = ceil(count / 256).

struct Dims {
  count: u32,
  clients: u32,
  scale: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> updates: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;
@group(0) @binding(4) var<storage, read> global_params: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn accumulate(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i >= dims.count) { return; }
  var sum = acc[i];
  for (var k = 0u; k < dims.clients; k++) {
    sum += weights[k] * updates[k * dims.count + i];
  }
  acc[i] = sum;
}

@compute @workgroup_size(256)
fn finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i >= dims.count) { return; }
  out[i] = global_params[i] + dims.scale * acc[i];
}
