/**
 * The past key/value caches a {@link SessionRunner} feeds back to onnxruntime: a list of
 * present tensors (plain graphs) or growing sequence-major buffers (graphs rewritten for an
 * incremental cache).
 */
import { ort, type Tensor } from './ort.js';

/** Elements of a cache tensor (float16 as raw bits). */
export type CacheData = Float32Array | Uint16Array;

/** Per-layer past key/value tensors of one sequence (batch 1). */
export class KVCache {
  private tensors: Tensor[] = [];
  length = 0;

  constructor(
    private readonly layers: number,
    private readonly heads: number,
    private readonly headDim: number,
    private readonly dtype: 'float32' | 'float16',
  ) {
    this.clear();
  }

  clear(): void {
    const empty = this.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    const t = new ort.Tensor(this.dtype, empty, [1, this.heads, 0, this.headDim]);
    this.tensors = Array.from({ length: this.layers * 2 }, () => t);
    this.length = 0;
  }

  /** Feeds for the next run, in [key0, value0, key1, ...] order. */
  pastTensors(): readonly Tensor[] {
    return this.tensors;
  }

  /** Adopts the present tensors of a run. */
  replace(present: Tensor[], length: number): void {
    this.tensors = present;
    this.length = length;
  }

  /** Drops positions >= `length` (copies each head's first `length` rows). */
  crop(length: number): void {
    if (length >= this.length) return;
    if (length === 0) return this.clear();
    const { heads, headDim } = this;
    const from = this.length;
    this.tensors = this.tensors.map((t) => {
      const src = t.data as CacheData;
      const dst = new (src.constructor as { new (n: number): CacheData })(heads * length * headDim);
      for (let h = 0; h < heads; h++) {
        const at = h * from * headDim;
        dst.set(src.subarray(at, at + length * headDim), h * length * headDim);
      }
      return new ort.Tensor(this.dtype, dst, [1, heads, length, headDim]);
    });
    this.length = length;
  }
}

/**
 * The cache of a graph rewritten by `rewriteForIncrementalCache` (cacheRewrite.ts): one growing buffer per
 * tensor, sequence-major (`[length, heads, head_dim]`), whose first `length` rows are the cache.
 * A step appends only its new rows; cropping sets the length; feeding is a view (no copy).
 */
export class IncrementalKVCache {
  private buffers: CacheData[];
  private capacity = 0;
  length = 0;

  constructor(
    layers: number,
    private readonly heads: number,
    private readonly headDim: number,
    private readonly dtype: 'float32' | 'float16',
  ) {
    this.buffers = Array.from({ length: layers * 2 }, () => this.allocate(0));
  }

  private allocate(positions: number): CacheData {
    const n = positions * this.heads * this.headDim;
    return this.dtype === 'float16' ? new Uint16Array(n) : new Float32Array(n);
  }

  clear(): void {
    this.length = 0;
  }

  pastTensors(): Tensor[] {
    const n = this.length * this.heads * this.headDim;
    return this.buffers.map((b) => new ort.Tensor(this.dtype, b.subarray(0, n), [1, this.length, this.heads, this.headDim]));
  }

  /** Appends the new rows of a run (each `[1, new, heads, head_dim]`, in [key0, value0, ...] order). */
  append(rows: Tensor[], length: number): void {
    this.appendRows(rows.map((t) => t.data as CacheData), length);
  }

  /** Appends new rows given as data (each `new × heads × head_dim`, in [key0, value0, ...] order). */
  appendRows(rows: readonly CacheData[], length: number): void {
    if (length > this.capacity) {
      // Grow by doubling: amortized O(1) per position, and old buffers stay valid for any
      // tensor still viewing them.
      const capacity = Math.max(length, this.capacity * 2, 64);
      this.buffers = this.buffers.map((old) => {
        const grown = this.allocate(capacity);
        grown.set(old.subarray(0, this.length * this.heads * this.headDim));
        return grown;
      });
      this.capacity = capacity;
    }
    const at = this.length * this.heads * this.headDim;
    rows.forEach((data, i) => this.buffers[i]!.set(data, at));
    this.length = length;
  }

  crop(length: number): void {
    if (length < this.length) this.length = length;
  }
}

