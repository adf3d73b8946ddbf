/**
 * Ready-made architectures from the literature.
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { Dense, relu, softmax } from "./layers.ts";
import { Chain, type Model } from "./model.ts";

/**
 * The "2NN" of the FedAvg paper (McMahan et al. 2017): a multilayer perceptron for MNIST with
 * two hidden layers of 200 relu units, 784-200-200-10, 199,210 parameters.
 *
 * @param seed Seed of the initial parameters (default 0).
 * @returns `Chain(Dense(784, 200, relu), Dense(200, 200, relu), Dense(200, 10), softmax)`.
 */
export function mnist2nn(seed = 0): Model {
  return Chain(Dense(784, 200, relu), Dense(200, 200, relu), Dense(200, 10), softmax)
    .initialize(seed);
}
