/**
 * The CPU engine's WebAssembly kernels (built from `kernels_wat.ts`) and a heap over their
 * memory. The module is instantiated once, when this file loads, from the bytes held by
 * `kernels_wasm.ts` (asynchronously: browsers refuse to compile large modules synchronously on
 * their main thread); its memory grows as buffers are allocated and is shared by every user in
 * the process or page (JavaScript is single-threaded, so kernels never run concurrently).
 *
 * This module is browser-compatible.
 *
 * @module
 */

import { type KernelExports, KERNELS_WASM_BASE64 } from "./kernels_wasm.ts";

/**
 * Decodes base64 (RFC 4648, section 4) with `Uint8Array.fromBase64` where the engine has it
 * (about 100 times faster), else with `atob`.
 *
 * @param text Base64 with padding.
 * @returns The bytes.
 * @throws {SyntaxError} If `text` is not base64 (from `atob`, a `DOMException` named
 *   `InvalidCharacterError`).
 */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const { instance } = await WebAssembly.instantiate(decodeBase64(KERNELS_WASM_BASE64));
const kernels = instance.exports as unknown as KernelExports;

/** The kernels' exports. */
export const wasm: KernelExports = kernels;

const ALIGN = 64;
const PAGE = 65536;

/**
 * A first-fit allocator over the kernels' memory. Offsets stay valid when the memory grows,
 * but typed-array views must be taken anew from {@linkcode WasmHeap.buffer} afterwards.
 */
export class WasmHeap {
  /** Free blocks as [offset, size] pairs sorted by offset, coalesced. */
  #free: [number, number][] = [];
  /** The end of the highest block ever handed out. */
  #top = ALIGN;
  #sizes = new Map<number, number>();

  /** The memory's current buffer (a new one after each growth). */
  get buffer(): ArrayBuffer {
    return kernels.memory.buffer as ArrayBuffer;
  }

  /**
   * Allocates `bytes` bytes, 64-byte aligned and zeroed.
   *
   * @param bytes Size in bytes.
   * @returns The block's offset.
   * @throws {RangeError} If the memory cannot grow that far.
   */
  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let offset = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const block = this.#free[i]!;
      if (block[1] < size) continue;
      offset = block[0];
      if (block[1] === size) this.#free.splice(i, 1);
      else block[0] += size, block[1] -= size;
      break;
    }
    if (offset < 0) {
      offset = this.#top;
      const end = offset + size;
      const have = kernels.memory.buffer.byteLength;
      if (end > have) {
        if (end > 2 ** 32) throw new RangeError(`Cannot allocate ${bytes} bytes of Wasm memory`);
        kernels.memory.grow(Math.ceil((end - have) / PAGE));
      }
      this.#top = end;
    }
    new Uint8Array(this.buffer, offset, size).fill(0);
    this.#sizes.set(offset, size);
    return offset;
  }

  /**
   * Returns a block to the heap.
   *
   * @param offset An offset from {@linkcode WasmHeap.alloc}, not yet freed.
   */
  free(offset: number): void {
    const size = this.#sizes.get(offset);
    if (size === undefined) return;
    this.#sizes.delete(offset);
    const free = this.#free;
    let i = 0;
    while (i < free.length && free[i]![0] < offset) i++;
    free.splice(i, 0, [offset, size]);
    // Coalesce with the next and previous blocks.
    if (i + 1 < free.length && free[i]![0] + free[i]![1] === free[i + 1]![0]) {
      free[i]![1] += free[i + 1]![1];
      free.splice(i + 1, 1);
    }
    if (i > 0 && free[i - 1]![0] + free[i - 1]![1] === free[i]![0]) {
      free[i - 1]![1] += free[i]![1];
      free.splice(i, 1);
      i--;
    }
    // A block at the top goes back to the bump region.
    const last = free[free.length - 1];
    if (last !== undefined && last[0] + last[1] === this.#top) {
      this.#top = last[0];
      free.pop();
    }
  }
}

/** The process's heap over the kernels' memory. */
export const heap: WasmHeap = new WasmHeap();
