/**
 * What a loaded model is and returns: its facts ({@link ModelInfo}), the logits rows of a
 * forward pass ({@link Logits}) and the traffic across the member seam.
 * @module
 */
import { InvalidArgumentError } from '../errors.js';
import { argmax, type LogitsRow } from '../member/distribution.js';
import type { GraphContract } from './graph.js';
import type { ResolvedProviders } from './providers.js';

/** What was loaded, for inspection and error messages. */
export interface ModelInfo {
  /** The source as the caller gave it (folder or Hub id). */
  source: string;
  /** Local folder the files were read from. */
  dir: string;
  /** Path of the ONNX file the session runs. */
  onnxFile: string;
  /** Parsed config.json. */
  config: Record<string, unknown>;
  /** Parsed generation_config.json, or null. */
  generationConfig: Record<string, unknown> | null;
  /** Layers with KV cache (0 when the graph has no cache). */
  numLayers: number;
  /** Key/value heads per layer. */
  numKeyValueHeads: number;
  /** Size of one head. */
  headDim: number;
  /** Width of a logits row. */
  vocabSize: number;
  /** Longest sequence (prompt + generated) the model accepts. */
  maxPositions: number;
  /** Execution providers in effect. */
  providers: ResolvedProviders;
  /** The graph contract discovered from the session (names as exported). */
  graph: GraphContract;
  /** Whether the graph runs rewritten for an incremental KV cache (see LoadModelOptions.incrementalCache). */
  incrementalCache: boolean;
  /** Whether scoring passes rank rows inside the graph (see LoadModelOptions.inGraphTopK). */
  inGraphTopK: boolean;
  /** Whether the graph's `logits_to_keep` input was added at load (see LoadModelOptions.logitsToKeep); false when the file has it. */
  logitsToKeepAdded: boolean;
}

/** Options of `CausalLM.forward`. */
export interface ForwardOptions {
  /**
   * Which logits rows to return: `'all'` new positions (default), `'last'`, or the last N.
   * Graphs with `num_logits_to_keep` compute only those rows.
   */
  logits?: 'all' | 'last' | number;
}

/** Logits rows returned by `CausalLM.forward`; rows are views, not copies. */
export class Logits {
  private readonly best: Int32Array;

  constructor(
    /** Row-major data, `rows × vocabSize`. */
    readonly data: Float32Array,
    /** Number of rows. */
    readonly rows: number,
    /** Width of a row. */
    readonly vocabSize: number,
    /** Greedy choice per row where already known (-1 where not). */
    best?: Int32Array,
  ) {
    this.best = best ?? new Int32Array(rows).fill(-1);
  }

  /** Greedy choice of row `i` (computed once per row; forward() finds it while checking rows). */
  argmax(i: number): number {
    const r = i < 0 ? this.rows + i : i;
    if (this.best[r]! < 0) this.best[r] = argmax(this.row(r));
    return this.best[r]!;
  }

  /** Row `i` (0-based; negative counts from the end) as a view into `data`. */
  row(i: number): LogitsRow {
    const r = i < 0 ? this.rows + i : i;
    if (r < 0 || r >= this.rows) throw new InvalidArgumentError('row', `logits row ${i} is out of range (0..${this.rows - 1}).`);
    return this.data.subarray(r * this.vocabSize, (r + 1) * this.vocabSize);
  }
}

/** What crossed the member seam from where the session runs (a worker: the bytes it sent). */
export interface SeamTraffic {
  /** Passes run (`CausalLM.forward` and `CausalLM.score`). */
  passes: number;
  /** Bytes the passes returned (logits rows, or top-k and asked logits). */
  passBytes: number;
  /** Reads of held rows (RowScore methods that went to the session). */
  reads: number;
  /** Bytes the reads returned (logits of asked ids, whole rows). */
  readBytes: number;
  /** Passes computed in one onnxruntime run together with other sequences' passes. */
  batchedPasses: number;
}

/** Where a model's onnxruntime session runs. */
export type ExecutionMode = 'worker' | 'inline';

