/**
 * The rows of an onnxruntime run as a pass returns them, and the state of one sequence a
 * runner holds: shared by the runner (sessionRunner.ts) and its batched runs (batchedPass.ts).
 * @module
 */
import { InferenceError } from '../errors.js';
import { float16ToFloat32 } from '../member/distribution.js';
import type { HeldRows, InGraphTop } from '../member/scores.js';
import type { IncrementalKVCache, KVCache } from './kvCache.js';
import type { Tensor } from './ort.js';
import type { InGraphScoreNames } from './topKRewrite.js';

/** Rows of one onnxruntime run (a view into its output where possible). */
export interface RowsPiece {
  data: Float32Array;
  rows: number;
  width: number;
  /** The in-graph summary of the same rows, when the pass asked for one (see topKRewrite.ts). */
  top: InGraphTop | null;
  /** Sequences in the run that computed the rows. */
  batch: number;
}

/** One sequence a runner holds: its ids, KV cache and the rows its scoring passes hold. */
export interface RunnerSlot {
  readonly seq: number;
  readonly history: number[];
  readonly cache: KVCache | IncrementalKVCache | null;
  readonly held: HeldRows;
  passes: number;
}

/** The last `wanted` of the `rowsReturned` rows of batch row `batchRow` of a run's output, before its last `skip` (right padding). */
export function rowsPiece(out: Record<string, Tensor>, batchRow: number, rowsReturned: number, wanted: number, inGraph: InGraphScoreNames | null, topK: number, settings: { name: string; tokenizerIds: number; tokenCount: number }, skip = 0): RowsPiece {
  const logitsTensor = out.logits!;
  const width = logitsTensor.dims[logitsTensor.dims.length - 1]!;
  if (width < settings.tokenizerIds) {
    throw new InferenceError(`${settings.name}: logits have ${width} columns but the tokenizer has ${settings.tokenizerIds} ids; the model and tokenizer do not belong together.`);
  }
  const raw = logitsTensor.data as Float32Array | Uint16Array;
  const base = batchRow * rowsReturned;
  const end = base + rowsReturned - skip;
  const first = end - wanted;
  // Much fewer rows than the run returned (a prefill without logits_to_keep): copy them, so a
  // view does not keep the whole buffer alive. A few dropped rows stay a view: no per-pass copy.
  let data: Float32Array;
  if (logitsTensor.type === 'float16') data = float16ToFloat32(raw.subarray(first * width, end * width) as Uint16Array);
  else data = rowsReturned - wanted - skip > wanted ? (raw as Float32Array).slice(first * width, end * width) : (raw as Float32Array).subarray(first * width, end * width);
  if (width > settings.tokenCount) maskPadding(data, wanted, width, settings.tokenCount);
  let top: InGraphTop | null = null;
  if (inGraph) {
    top = {
      k: topK,
      logits: (out[inGraph.topLogits]!.data as Float32Array).subarray(first * topK, end * topK),
      ids: (out[inGraph.topIds]!.data as BigInt64Array).subarray(first * topK, end * topK),
      sums: (out[inGraph.rowSums]!.data as Float32Array).subarray(first, end),
    };
  }
  return { data, rows: wanted, width, top, batch: Number(out.logits!.dims[0] ?? 1) };
}

/**
 * The logit padding columns get: columns past the tokenizer's ids (a vocabulary padded to a
 * multiple of 64 or 128, as Qwen and Phi-3 exports are) have no token, so they must never be
 * drafted, drawn or ranked. Finite, so that the finiteness checks still catch broken rows, and
 * far below any real logit (exp underflows to 0 whatever the temperature); exact in float32.
 */
export const PADDING_LOGIT = -(2 ** 100);

function maskPadding(data: Float32Array, rows: number, width: number, columns: number): void {
  for (let r = 0; r < rows; r++) data.fill(PADDING_LOGIT, r * width + columns, (r + 1) * width);
}
