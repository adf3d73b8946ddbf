/**
 * The reference engine's passes over a chain: each layer's forward and backward as its kind
 * declares them (`layers/`), on buffers allocated once per batch size.
 *
 * A trailing loss head (softmax) is not run: the loss, softmax cross-entropy, takes the
 * head's inputs as logits.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import type { Dataset } from "../data/dataset.ts";
import { layerKind } from "./layers.ts";
import type { Model } from "./model.ts";

/** Options of {@linkcode Workspace}. */
export interface WorkspaceOptions {
  /** Whether to allocate the gradients of the activations and the parameters. */
  training: boolean;
  /** Whether {@linkcode Workspace.backward} also writes the gradient of the input batch. */
  inputGradient?: boolean;
}

/**
 * The index of a chain's logits among its activations: the input of a trailing loss head, or
 * the output of the last layer.
 *
 * @param model The model.
 * @returns The number of layers run before the loss.
 */
export function logitsIndex(model: Model): number {
  const last = model.layers.length - 1;
  return layerKind(model.layers[last]!).lossHead ? last : last + 1;
}

/** Buffers for one batch size and the passes over them. */
export class Workspace {
  readonly model: Model;
  /** acts[0] is the input batch; acts[l + 1] the output of layer l, up to the logits. */
  readonly acts: Float32Array[];
  /** grads[l] is the gradient of acts[l] (grads[0] only with `inputGradient`). */
  readonly grads: Float32Array[];
  readonly labels: Int32Array;
  /** Gradient of the loss for every parameter, laid out like `model.params`. */
  readonly paramGrads: Float32Array;
  /** Layers run before the loss. */
  readonly depth: number;
  readonly #params: Float32Array[];
  readonly #paramGrads: Float32Array[];

  /**
   * Allocates the buffers.
   *
   * @param model The model.
   * @param batch The most examples a pass takes.
   * @param options Which gradients to allocate.
   */
  constructor(model: Model, batch: number, options: WorkspaceOptions) {
    const { training, inputGradient = false } = options;
    this.model = model;
    this.depth = logitsIndex(model);
    const widths = model.widths.slice(0, this.depth + 1);
    this.acts = widths.map((width) => new Float32Array(batch * width));
    const gradSize = (l: number) => training && (l > 0 || inputGradient) ? batch * widths[l]! : 0;
    this.grads = widths.map((_, l) => new Float32Array(gradSize(l)));
    this.labels = new Int32Array(batch);
    this.paramGrads = new Float32Array(training ? model.params.length : 0);
    const { offsets } = model;
    this.#params = widths.map((_, l) => model.layerParams(l));
    this.#paramGrads = training
      ? widths.map((_, l) => this.paramGrads.subarray(offsets[l]!, offsets[l + 1]!))
      : [];
  }

  /** Copies the examples `order[start, start + rows)` into the input and label buffers. */
  gather(data: Dataset, order: ArrayLike<number>, start: number, rows: number): void {
    const f = data.features;
    const input = this.acts[0]!;
    for (let r = 0; r < rows; r++) {
      const j = order[start + r]!;
      input.set(data.x.subarray(j * f, (j + 1) * f), r * f);
      this.labels[r] = data.y[j]!;
    }
  }

  /** Runs the layers on `rows` examples in acts[0]; returns the logits. */
  forward(rows: number): Float32Array {
    const { layers, widths } = this.model;
    for (let l = 0; l < this.depth; l++) {
      const spec = layers[l]!;
      layerKind(spec).forward(spec, {
        x: this.acts[l]!,
        y: this.acts[l + 1]!,
        rows,
        inputs: widths[l]!,
        params: this.#params[l]!,
      });
    }
    return this.acts[this.depth]!;
  }

  /**
   * Back-propagates grads[depth] (the logits' gradient) into `paramGrads`, zeroed first, and
   * into grads[0] when the input gradient was asked for.
   */
  backward(rows: number): void {
    const { layers, widths } = this.model;
    this.paramGrads.fill(0);
    for (let l = this.depth - 1; l >= 0; l--) {
      const spec = layers[l]!;
      const dx = this.grads[l]!;
      layerKind(spec).backward!(spec, {
        x: this.acts[l]!,
        y: this.acts[l + 1]!,
        dy: this.grads[l + 1]!,
        dx: dx.length > 0 ? dx : null,
        rows,
        inputs: widths[l]!,
        params: this.#params[l]!,
        grads: this.#paramGrads[l]!,
      });
    }
  }
}
