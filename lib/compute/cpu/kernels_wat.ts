/**
 * The source of `kernels.wasm`: a generator of WebAssembly text (WAT, with SIMD) for the CPU
 * engine's kernels. `deno task build:wasm` compiles it; a test checks that the committed binary
 * equals a fresh build.
 *
 * Every kernel does the reference engine's arithmetic (`lib/nn/kernels.ts`, `lib/nn/optim.ts`,
 * `lib/fl/fedavg.ts`) operation for operation: products and sums in float64, each stored value
 * rounded to float32 where the reference stores into a Float32Array, and every sum in the
 * reference's order. SIMD runs across independent outputs (columns, rows, parameters), never
 * across the terms of one sum, so the results are the reference's bits.
 *
 * Pointers and strides are byte offsets into the module's memory.
 *
 * This module is browser-compatible.
 *
 * @module
 */

/** The largest number of updates one FedAvg flush folds in. */
export const MAX_FLUSH = 8;

const get = (name: string) => `(local.get $${name})`;
const set = (name: string, value: string) => `(local.set $${name} ${value})`;
const add = (a: string, b: string) => `(i32.add ${a} ${b})`;
const i32 = (n: number) => `(i32.const ${n})`;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const locals = (prefix: string, n: number, type: string) =>
  range(n).map((i) => `(local $${prefix}${i} ${type})`).join(" ");

/** Float64 lanes of the low (0, 1) or high (2, 3) float32 lanes of a vector. */
const promoteLow = (v: string) => `(f64x2.promote_low_f32x4 ${v})`;
const promoteHigh = (v: string) =>
  `(f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${v} ${v}))`;
/** Rounds both float64 lanes to float32 (and back): a store into a Float32Array. */
const round = (v: string) => `(f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero ${v}))`;
/** Packs two float64 vectors (already float32 values) into one float32 vector. */
const pack = (lo: string, hi: string) =>
  `(i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero ${lo}) (f32x4.demote_f64x2_zero ${hi}))`;
const splat32 = (f32: string) => `(f64x2.splat (f64.promote_f32 ${f32}))`;

/**
 * `fedavg_check(p, n) -> i32`: 1 if any of the `n` float32 at `p` is infinite or NaN. `x * 0`
 * is a zero for every finite `x` and NaN otherwise, so eight running sums of such products
 * (one multiply-add a vector) end as NaN exactly when a value is not finite.
 */
function fedavgCheck(): string {
  const acc = range(8);
  return `
  (func (export "fedavg_check") (param $p i32) (param $n i32) (result i32)
    (local $e i32) (local $e32 i32) (local $zero v128) ${locals("a", 8, "v128")}
    ${set("e", add(get("p"), `(i32.shl ${get("n")} ${i32(2)})`))}
    ${set("e32", add(get("p"), `(i32.shl (i32.and ${get("n")} ${i32(-32)}) ${i32(2)})`))}
    (block $done32 (loop $l32
      (br_if $done32 (i32.ge_u ${get("p")} ${get("e32")}))
      ${
    acc.map((q) =>
      set(
        `a${q}`,
        `(f32x4.relaxed_madd (v128.load offset=${16 * q} ${get("p")}) ${get("zero")} ${
          get(`a${q}`)
        })`,
      )
    ).join("\n      ")
  }
      ${set("p", add(get("p"), i32(128)))}
      (br $l32)))
    ${
    range(3).map((level) =>
      range(4 >> level).map((q) =>
        set(`a${q}`, `(f32x4.add ${get(`a${q}`)} ${get(`a${q + (4 >> level)}`)})`)
      ).join("\n    ")
    ).join("\n    ")
  }
    (if (v128.any_true (f32x4.ne ${get("a0")} ${get("a0")})) (then (return ${i32(1)})))
    (block $done (loop $l
      (br_if $done (i32.ge_u ${get("p")} ${get("e")}))
      (if (i32.eq (i32.and (i32.load ${get("p")}) ${i32(0x7f800000)}) ${i32(0x7f800000)})
        (then (return ${i32(1)})))
      ${set("p", add(get("p"), i32(4)))}
      (br $l)))
    ${i32(0)})`;
}

/**
 * `fedavg_finish(out, global, sum, scale, n4)`: `out[i] = global[i] + scale * sum[i]` over
 * `4 * n4` values, in float64 (multiply, then add: never fused) and rounded to float32 once,
 * as `FedAvg.finish` stores into a Float32Array. `out` may be `global`.
 */
function fedavgFinish(): string {
  return `
  (func (export "fedavg_finish") (param $out i32) (param $g i32) (param $sum i32)
      (param $scale f64) (param $n4 i32)
    (local $end i32) (local $sc v128) (local $v v128)
    ${set("sc", `(f64x2.splat ${get("scale")})`)}
    ${set("end", add(get("g"), `(i32.shl ${get("n4")} ${i32(4)})`))}
    (block $done (loop $l
      (br_if $done (i32.ge_u ${get("g")} ${get("end")}))
      ${set("v", `(v128.load ${get("g")})`)}
      (v128.store ${get("out")} ${
    pack(
      `(f64x2.add ${promoteLow(get("v"))} (f64x2.mul ${get("sc")} (v128.load ${get("sum")})))`,
      `(f64x2.add ${promoteHigh(get("v"))} (f64x2.mul ${get("sc")} (v128.load offset=16 ${
        get("sum")
      })))`,
    )
  })
      ${set("g", add(get("g"), i32(16)))}
      ${set("out", add(get("out"), i32(16)))}
      ${set("sum", add(get("sum"), i32(32)))}
      (br $l))))`;
}

/**
 * `fedavg_flush<K>(sum, slots, stride, weights, n8)` and `fedavg_flush<K>_exact(...)`: for each
 * of the first `K` float32 updates at `slots + j * stride`, in order, `sum[i] += weights[j] *
 * update[i]` over `8 * n8` values (float64 sum and weights). One pass over the sum for `K`
 * updates, eight values a step.
 *
 * The `_exact` kernels compute `sum + weight * update` with `f64x2.relaxed_madd`, fused or not;
 * the caller uses them only where every product `weight * update` is exact in float64 (an
 * integer weight of at most 2^29: 29 significant bits times float32's 24 fit in float64's 53,
 * far from overflow and underflow), and then a fused and an unfused multiply-add round the
 * same exact sum once, giving the reference's bits.
 */
function fedavgFlush(k: number, exact: boolean): string {
  const acc = range(4);
  const mac = (s: string, w: string, u: string) =>
    exact ? `(f64x2.relaxed_madd ${w} ${u} ${s})` : `(f64x2.add ${s} (f64x2.mul ${w} ${u}))`;
  const steps = range(k).map((j) => `
      ${set("u", add(get(`p${j}`), get("i")))}
      ${
    acc.map((q) =>
      set(
        `s${q}`,
        mac(
          get(`s${q}`),
          get(`w${j}`),
          promoteLow(`(v128.load64_zero offset=${8 * q} ${get("u")})`),
        ),
      )
    ).join("\n      ")
  }`).join("");
  return `
  (func (export "fedavg_flush${k}${exact ? "_exact" : ""}") (param $sum i32) (param $slots i32)
      (param $stride i32) (param $wts i32) (param $n8 i32)
    (local $i i32) (local $end i32) (local $u i32)
    ${locals("s", 4, "v128")} ${locals("p", k, "i32")} ${locals("w", k, "v128")}
    ${
    range(k).map((j) =>
      `${set(`p${j}`, add(get("slots"), `(i32.mul ${get("stride")} ${i32(j)})`))}
    ${set(`w${j}`, `(v128.load64_splat offset=${8 * j} ${get("wts")})`)}`
    ).join("\n    ")
  }
    ${set("end", `(i32.shl ${get("n8")} ${i32(5)})`)}
    (block $done (loop $l
      (br_if $done (i32.ge_u ${get("i")} ${get("end")}))
      ${acc.map((q) => set(`s${q}`, `(v128.load offset=${16 * q} ${get("sum")})`)).join("\n      ")}
      ${steps}
      ${
    acc.map((q) => `(v128.store offset=${16 * q} ${get("sum")} ${get(`s${q}`)})`).join("\n      ")
  }
      ${set("i", add(get("i"), i32(32)))}
      ${set("sum", add(get("sum"), i32(64)))}
      (br $l))))`;
}

/**
 * `dense_fwd(x, ldx, w, ldw, b, y, ldy, rows, nIn, blocks, relu)`: the reference
 * `denseForward` on `16 * blocks` output columns (zero-padded past `nOut`), zero inputs
 * skipped, each output held in a register across the sum over inputs.
 */
function denseForward(): string {
  const acc = range(8);
  const mac = range(4).map((q) => `
          ${set("t", `(v128.load offset=${16 * q} ${get("wp")})`)}
          ${
    set(
      `a${2 * q}`,
      round(`(f64x2.add ${get(`a${2 * q}`)} (f64x2.mul ${get("xs")} ${promoteLow(get("t"))}))`),
    )
  }
          ${
    set(
      `a${2 * q + 1}`,
      round(
        `(f64x2.add ${get(`a${2 * q + 1}`)} (f64x2.mul ${get("xs")} ${promoteHigh(get("t"))}))`,
      ),
    )
  }`)
    .join("");
  return `
  (func (export "dense_fwd") (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32)
      (param $b i32) (param $y i32) (param $ldy i32) (param $rows i32) (param $nIn i32)
      (param $blocks i32) (param $relu i32)
    (local $i i32) (local $c i32) (local $xr i32) (local $yp i32) (local $xp i32) (local $xe i32)
    (local $wp i32) (local $xv f32) (local $xs v128) (local $t v128) (local $zero v128)
    ${locals("a", 8, "v128")}
    (block $rowsDone (loop $rowLoop
      (br_if $rowsDone (i32.ge_u ${get("i")} ${get("rows")}))
      ${set("xr", add(get("x"), `(i32.mul ${get("i")} ${get("ldx")})`))}
      ${set("xe", add(get("xr"), `(i32.shl ${get("nIn")} ${i32(2)})`))}
      ${set("c", i32(0))}
      (block $colsDone (loop $colLoop
        (br_if $colsDone (i32.ge_u ${get("c")} ${get("blocks")}))
        ${
    range(4).map((q) =>
      `${
        set("t", `(v128.load offset=${16 * q} ${add(get("b"), `(i32.shl ${get("c")} ${i32(6)})`)})`)
      }
        ${set(`a${2 * q}`, promoteLow(get("t")))}
        ${set(`a${2 * q + 1}`, promoteHigh(get("t")))}`
    ).join("\n        ")
  }
        ${set("wp", add(get("w"), `(i32.shl ${get("c")} ${i32(6)})`))}
        ${set("xp", get("xr"))}
        (block $kDone (loop $kLoop
          (br_if $kDone (i32.ge_u ${get("xp")} ${get("xe")}))
          ${set("xv", `(f32.load ${get("xp")})`)}
          (if (f32.ne ${get("xv")} (f32.const 0)) (then
            ${set("xs", splat32(get("xv")))}
            ${mac}))
          ${set("xp", add(get("xp"), i32(4)))}
          ${set("wp", add(get("wp"), get("ldw")))}
          (br $kLoop)))
        (if ${get("relu")} (then
          ${
    acc.map((j) =>
      set(`a${j}`, `(v128.and ${get(`a${j}`)} (f64x2.gt ${get(`a${j}`)} ${get("zero")}))`)
    ).join("\n          ")
  }))
        ${
    set(
      "yp",
      add(add(get("y"), `(i32.mul ${get("i")} ${get("ldy")})`), `(i32.shl ${get("c")} ${i32(6)})`),
    )
  }
        ${
    range(4).map((q) =>
      `(v128.store offset=${16 * q} ${get("yp")} ${pack(get(`a${2 * q}`), get(`a${2 * q + 1}`))})`
    ).join("\n        ")
  }
        ${set("c", add(get("c"), i32(1)))}
        (br $colLoop)))
      ${set("i", add(get("i"), i32(1)))}
      (br $rowLoop))))`;
}

/**
 * `prep_dy(dy, ld, rows, n, dyT, ldt, dy64, ld64)`: float64 copies of a float32 gradient
 * (rows, n): transposed (`dyT[o][i]`) for `dense_dx` and row-major for `dense_dw_sgd`.
 */
function prepDy(): string {
  return `
  (func (export "prep_dy") (param $dy i32) (param $ld i32) (param $rows i32) (param $n i32)
      (param $dyT i32) (param $ldt i32) (param $dy64 i32) (param $ld64 i32)
    (local $i i32) (local $o i32) (local $v f64)
    (block $iDone (loop $iLoop
      (br_if $iDone (i32.ge_u ${get("i")} ${get("rows")}))
      ${set("o", i32(0))}
      (block $oDone (loop $oLoop
        (br_if $oDone (i32.ge_u ${get("o")} ${get("n")}))
        ${
    set(
      "v",
      `(f64.promote_f32 (f32.load ${
        add(add(get("dy"), `(i32.mul ${get("i")} ${get("ld")})`), `(i32.shl ${get("o")} ${i32(2)})`)
      }))`,
    )
  }
        (f64.store ${
    add(add(get("dyT"), `(i32.mul ${get("o")} ${get("ldt")})`), `(i32.shl ${get("i")} ${i32(3)})`)
  } ${get("v")})
        (f64.store ${
    add(add(get("dy64"), `(i32.mul ${get("i")} ${get("ld64")})`), `(i32.shl ${get("o")} ${i32(3)})`)
  } ${get("v")})
        ${set("o", add(get("o"), i32(1)))}
        (br $oLoop)))
      ${set("i", add(get("i"), i32(1)))}
      (br $iLoop))))`;
}

/**
 * One block of `dense_dx`: rows `r .. r + 2 * n` of `dx[:, k] = dy wᵀ[:, k]`, each a float64
 * sum over the outputs in order, stored as float32, zeroed where the mask input is not > 0.
 */
function dxBlock(n: number): string {
  const store = range(n).flatMap((j) =>
    range(2).map((lane) => {
      const row = add(get("r"), i32(2 * j + lane));
      const offset = add(`(i32.mul ${row} ${get("ld")})`, `(i32.shl ${get("k")} ${i32(2)})`);
      return `${set("val", `(f32.demote_f64 (f64x2.extract_lane ${lane} ${get(`a${j}`)}))`)}
          (if ${get("mask")} (then ${
        set(
          "val",
          `(select ${get("val")} (f32.const 0) (f32.gt (f32.load ${
            add(get("x"), offset)
          }) (f32.const 0)))`,
        )
      }))
          (f32.store ${add(get("dx"), offset)} ${get("val")})`;
    })
  ).join("\n          ");
  return `
          ${range(n).map((j) => set(`a${j}`, "(v128.const i64x2 0 0)")).join(" ")}
          ${set("tp", add(get("dyT"), `(i32.shl ${get("r")} ${i32(3)})`))}
          ${set("wp", get("wr"))}
          (block $oDone${n} (loop $oLoop${n}
            (br_if $oDone${n} (i32.ge_u ${get("wp")} ${get("we")}))
            ${set("ws", splat32(`(f32.load ${get("wp")})`))}
            ${
    range(n).map((j) =>
      set(
        `a${j}`,
        `(f64x2.add ${get(`a${j}`)} (f64x2.mul (v128.load offset=${16 * j} ${get("tp")}) ${
          get("ws")
        }))`,
      )
    ).join("\n            ")
  }
            ${set("wp", add(get("wp"), i32(4)))}
            ${set("tp", add(get("tp"), get("ldt")))}
            (br $oLoop${n})))
          ${store}
          ${set("r", add(get("r"), i32(2 * n)))}`;
}

/**
 * `dense_dx(dyT, ldt, w, ldw, nOut, dx, x, ld, rows, nIn, mask)`: the `dx` of the reference
 * `denseBackward` followed by the previous layer's relu backward when `mask` is set; rows in
 * blocks of 16, then pairs (an odd batch also writes the pad row after the last).
 */
function denseDx(): string {
  return `
  (func (export "dense_dx") (param $dyT i32) (param $ldt i32) (param $w i32) (param $ldw i32)
      (param $nOut i32) (param $dx i32) (param $x i32) (param $ld i32) (param $rows i32)
      (param $nIn i32) (param $mask i32)
    (local $k i32) (local $r i32) (local $wr i32) (local $we i32) (local $wp i32) (local $tp i32)
    (local $ws v128) (local $val f32)
    ${locals("a", 8, "v128")}
    (block $kDone (loop $kLoop
      (br_if $kDone (i32.ge_u ${get("k")} ${get("nIn")}))
      ${set("wr", add(get("w"), `(i32.mul ${get("k")} ${get("ldw")})`))}
      ${set("we", add(get("wr"), `(i32.shl ${get("nOut")} ${i32(2)})`))}
      ${set("r", i32(0))}
      (block $b16Done (loop $b16Loop
        (br_if $b16Done (i32.gt_u ${add(get("r"), i32(16))} ${get("rows")}))
        ${dxBlock(8)}
        (br $b16Loop)))
      (block $b2Done (loop $b2Loop
        (br_if $b2Done (i32.ge_u ${get("r")} ${get("rows")}))
        ${dxBlock(1)}
        (br $b2Loop)))
      ${set("k", add(get("k"), i32(1)))}
      (br $kLoop))))`;
}

/**
 * `dense_dw_sgd(x, ldx, dy64, ld64, rows, kCount, blocks, w, ldw, v, lr, momentum,
 * weightDecay, useMomentum, anchor, mu, useProximal)`: for each of `kCount` weight rows and
 * `16 * blocks` columns, the reference `denseBackward`'s float32 gradient sum over the batch
 * (zero inputs skipped), followed at once by the reference `Sgd.step` on that parameter
 * (velocity at `v`, laid out like `w`; with `useProximal`, FedProx's `mu * (w - anchor)` added
 * to the gradient, the anchor laid out like `w`). With `x` a column of ones it is the bias
 * gradient and step.
 */
function denseDwSgd(): string {
  const mac = range(8).map((j) =>
    set(
      `a${j}`,
      round(
        `(f64x2.add ${get(`a${j}`)} (f64x2.mul ${get("xs")} (v128.load offset=${16 * j} ${
          get("dp")
        })))`,
      ),
    )
  ).join("\n              ");
  const sgd = range(4).map((q) => {
    const parts = [0, 1].map((h) => {
      const a = get(`a${2 * q + h}`);
      const p = (h === 0 ? promoteLow : promoteHigh)(get("t"));
      return { a, p, g: get(`g${h}`), h };
    });
    // g = grad + weightDecay * w (+ mu * (w - anchor)), in the reference's order.
    const gradients = parts.map(({ a, p, h }) =>
      set(`g${h}`, `(f64x2.add ${a} (f64x2.mul ${get("wd")} ${p}))`)
    ).join(" ");
    const proximal = parts.map(({ p, h }) =>
      set(
        `g${h}`,
        `(f64x2.add ${get(`g${h}`)} (f64x2.mul ${get("mu")} (f64x2.sub ${p} ${
          (h === 0 ? promoteLow : promoteHigh)(get("ta"))
        })))`,
      )
    ).join(" ");
    const withMomentum = parts.map(({ g, h }) =>
      set(
        `n${h}`,
        round(
          `(f64x2.add (f64x2.mul ${get("mom")} ${
            (h === 0 ? promoteLow : promoteHigh)(get("tv"))
          }) ${g})`,
        ),
      )
    ).join(" ");
    return `
            ${set("t", `(v128.load offset=${16 * q} ${get("wp")})`)}
            ${gradients}
            (if ${get("useProx")} (then
              ${set("ta", `(v128.load offset=${16 * q} ${get("ap")})`)}
              ${proximal}))
            (if ${get("useMom")} (then
              ${set("tv", `(v128.load offset=${16 * q} ${get("vp")})`)}
              ${withMomentum}
              (v128.store offset=${16 * q} ${get("vp")} ${pack(get("n0"), get("n1"))})
              ${
      set("n0", `(f64x2.sub ${promoteLow(get("t"))} (f64x2.mul ${get("lr")} ${get("n0")}))`)
    }
              ${
      set("n1", `(f64x2.sub ${promoteHigh(get("t"))} (f64x2.mul ${get("lr")} ${get("n1")}))`)
    })
            (else
              ${set("n0", `(f64x2.sub ${parts[0]!.p} (f64x2.mul ${get("lr")} ${parts[0]!.g}))`)}
              ${set("n1", `(f64x2.sub ${parts[1]!.p} (f64x2.mul ${get("lr")} ${parts[1]!.g}))`)}))
            (v128.store offset=${16 * q} ${get("wp")} ${pack(get("n0"), get("n1"))})`;
  }).join("");
  return `
  (func (export "dense_dw_sgd") (param $x i32) (param $ldx i32) (param $dy64 i32) (param $ld64 i32)
      (param $rows i32) (param $kCount i32) (param $blocks i32) (param $w i32) (param $ldw i32)
      (param $v i32) (param $lrS f64) (param $momS f64) (param $wdS f64) (param $useMom i32)
      (param $anchor i32) (param $muS f64) (param $useProx i32)
    (local $k i32) (local $c i32) (local $i i32) (local $xp i32) (local $dp i32) (local $wp i32)
    (local $vp i32) (local $ap i32) (local $xv f32) (local $xs v128) (local $t v128) (local $tv v128)
    (local $ta v128) (local $g0 v128) (local $g1 v128)
    (local $n0 v128) (local $n1 v128) (local $lr v128) (local $mom v128) (local $wd v128)
    (local $mu v128)
    ${locals("a", 8, "v128")}
    ${set("lr", `(f64x2.splat ${get("lrS")})`)}
    ${set("mom", `(f64x2.splat ${get("momS")})`)}
    ${set("wd", `(f64x2.splat ${get("wdS")})`)}
    ${set("mu", `(f64x2.splat ${get("muS")})`)}
    (block $kDone (loop $kLoop
      (br_if $kDone (i32.ge_u ${get("k")} ${get("kCount")}))
      ${set("c", i32(0))}
      (block $cDone (loop $cLoop
        (br_if $cDone (i32.ge_u ${get("c")} ${get("blocks")}))
        ${range(8).map((j) => set(`a${j}`, "(v128.const i64x2 0 0)")).join(" ")}
        ${set("xp", add(get("x"), `(i32.shl ${get("k")} ${i32(2)})`))}
        ${set("dp", add(get("dy64"), `(i32.shl ${get("c")} ${i32(7)})`))}
        ${set("i", i32(0))}
        (block $iDone (loop $iLoop
          (br_if $iDone (i32.ge_u ${get("i")} ${get("rows")}))
          ${set("xv", `(f32.load ${get("xp")})`)}
          (if (f32.ne ${get("xv")} (f32.const 0)) (then
              ${set("xs", splat32(get("xv")))}
              ${mac}))
          ${set("xp", add(get("xp"), get("ldx")))}
          ${set("dp", add(get("dp"), get("ld64")))}
          ${set("i", add(get("i"), i32(1)))}
          (br $iLoop)))
        ${
    set(
      "wp",
      add(add(`(i32.mul ${get("k")} ${get("ldw")})`, `(i32.shl ${get("c")} ${i32(6)})`), get("w")),
    )
  }
        ${
    set(
      "vp",
      add(add(`(i32.mul ${get("k")} ${get("ldw")})`, `(i32.shl ${get("c")} ${i32(6)})`), get("v")),
    )
  }
        ${
    set(
      "ap",
      add(
        add(`(i32.mul ${get("k")} ${get("ldw")})`, `(i32.shl ${get("c")} ${i32(6)})`),
        get("anchor"),
      ),
    )
  }
        ${sgd}
        ${set("c", add(get("c"), i32(1)))}
        (br $cLoop)))
      ${set("k", add(get("k"), i32(1)))}
      (br $kLoop))))`;
}

/**
 * The whole module's text.
 *
 * @returns WebAssembly text with the SIMD and relaxed SIMD proposals' instructions.
 */
export function kernelsWat(): string {
  return `(module
  (memory (export "memory") 1)
${fedavgCheck()}
${range(MAX_FLUSH).flatMap((j) => [fedavgFlush(j + 1, false), fedavgFlush(j + 1, true)]).join("\n")}
${fedavgFinish()}
${denseForward()}
${prepDy()}
${denseDx()}
${denseDwSgd()}
)
`;
}
