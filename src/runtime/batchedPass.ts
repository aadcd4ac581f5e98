/**
 * One onnxruntime run over passes of several sequences (continuous batching): row `b` of the
 * batch is sequence `b`'s pass. Pasts of different lengths and passes of different lengths are
 * aligned in one rectangle,
 *
 *     [ past_b | zeros up to the longest past | pad up to the longest pass | the pass's ids ]
 *
 * (a first pass, with no past, is padded after its ids instead: see {@link padding}) with
 * `attention_mask` 1 exactly on the real past and the real ids, and `position_ids` counting on
 * from each sequence's own length, so every real token sees what it would see alone.
 * `logits_to_keep` is the most rows any pass wants (plus its right padding), each pass takes
 * its own rows, and each sequence appends the rows of its own ids to its cache. Needs the incremental-cache rewrite (sequence-major caches), an attention mask,
 * position ids and a batch axis; {@link batchRefusal} says why not otherwise.
 * @module
 */
import type { GraphContract } from './graph.js';
import type { IncrementalCacheNames } from './cacheRewrite.js';
import { IncrementalKVCache, type CacheData } from './kvCache.js';
import { ort, type Tensor } from './ort.js';
import type { InGraphScoreNames } from './topKRewrite.js';
import type { RowsPiece, RunnerSlot } from './runRows.js';

/** One sequence's pass in a batch. */
export interface BatchJob {
  slot: RunnerSlot;
  ids: readonly number[];
  /** Rows it wants (its last ones). */
  wanted: number;
  /** In-graph top-k of the pass (0: a forward without scores); equal across a batch. */
  topK: number;
}

/** What a batched run needs of its runner. */
export interface BatchContext {
  graph: GraphContract;
  incremental: IncrementalCacheNames;
  inGraph: InGraphScoreNames | null;
  heads: number;
  headDim: number;
  run(feeds: Record<string, Tensor>, withScores: boolean, total: number): Promise<Record<string, Tensor>>;
  /** The last `wanted` rows of batch row `batchRow` before its last `skip` (right padding). */
  piece(out: Record<string, Tensor>, batchRow: number, rowsReturned: number, wanted: number, topK: number, skip: number): RowsPiece;
}

/**
 * Where a pass shorter than the batch's longest is padded: on the left (before its ids, after
 * its past), so its rows are the last ones — except a pass with no past, padded on the right:
 * a padded position must see some real key (a row that attends to nothing has no defined
 * softmax), and with no past only the pass's own ids are there to see.
 */
export function padding(job: Pick<BatchJob, 'slot' | 'ids'>, longest: number): { left: number; right: number } {
  const pad = longest - job.ids.length;
  return job.slot.history.length === 0 ? { left: 0, right: pad } : { left: pad, right: 0 };
}

/** Why passes of this graph cannot share a run, or null when they can. */
export function batchRefusal(graph: GraphContract, incremental: boolean, batchCouplingOp: string | null = null): string | null {
  if (graph.numCacheLayers === 0) return 'the graph keeps no KV cache';
  if (batchCouplingOp) return `its ${batchCouplingOp} quantizes activations with one scale for the whole batch, so a sequence's logits would depend on the others batched with it`;
  if (!incremental) return 'its cache is not kept incrementally (incrementalCache is off, or the rewrite did not apply)';
  if (!graph.hasAttentionMask) return 'the graph takes no attention_mask, so pasts of different lengths cannot be aligned';
  if (!graph.hasPositionIds) return 'the graph takes no position_ids, so each sequence cannot keep its own positions';
  if (!graph.batchAxis) return "the graph's input_ids has no free batch axis";
  if (graph.hasUseCacheBranch) return 'it is a merged decoder (use_cache_branch), whose branch is chosen for the whole batch';
  return null;
}

/**
 * Runs the jobs as one batch; returns each job's rows and appends each job's new cache rows
 * (its ids join its history at the caller). On error no cache changed.
 */
export async function runBatched(jobs: readonly BatchJob[], ctx: BatchContext): Promise<RowsPiece[]> {
  const { graph: g, heads, headDim } = ctx;
  const batch = jobs.length;
  const newLength = Math.max(...jobs.map((j) => j.ids.length));
  const pastLength = Math.max(...jobs.map((j) => j.slot.history.length));
  const width = pastLength + newLength;
  const ids = g.idsDType === 'int32' ? new Int32Array(batch * newLength) : new BigInt64Array(batch * newLength);
  const mask = new BigInt64Array(batch * width);
  const positions = new BigInt64Array(batch * newLength);
  const pads = jobs.map((job) => padding(job, newLength));
  jobs.forEach((job, b) => {
    const past = job.slot.history.length;
    const { left, right } = pads[b]!;
    mask.fill(1n, b * width, b * width + past);
    mask.fill(1n, b * width + pastLength + left, (b + 1) * width - right);
    for (let i = 0; i < newLength; i++) {
      const real = i - left;
      if (real >= 0 && real < job.ids.length) {
        if (ids instanceof Int32Array) ids[b * newLength + i] = job.ids[real]!;
        else ids[b * newLength + i] = BigInt(job.ids[real]!);
      }
      positions[b * newLength + i] = BigInt(past + Math.max(0, real));
    }
  });
  const feeds: Record<string, Tensor> = {
    input_ids: new ort.Tensor(g.idsDType, ids, [batch, newLength]),
    attention_mask: new ort.Tensor('int64', mask, [batch, width]),
    position_ids: new ort.Tensor('int64', positions, [batch, newLength]),
  };
  const keep = Math.max(...jobs.map((j, b) => j.wanted + pads[b]!.right));
  if (g.logitsToKeepInput) feeds[g.logitsToKeepInput] = new ort.Tensor('int64', BigInt64Array.of(BigInt(keep)), []);
  const topK = jobs[0]!.topK;
  if (ctx.inGraph) feeds[ctx.inGraph.k] = new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.max(1, topK))), [1]);
  // Each layer's past as one [batch, longest past, heads, head_dim] block (zeros past a shorter one).
  const row = heads * headDim;
  const pasts = jobs.map((j) => (j.slot.cache as IncrementalKVCache).pastTensors());
  ctx.incremental.pastInputs.forEach(([k, v], layer) => {
    for (const [name, at] of [[k, layer * 2], [v, layer * 2 + 1]] as const) {
      const first = pasts[0]![at]!.data as CacheData;
      const block = new (first.constructor as { new (n: number): CacheData })(batch * pastLength * row);
      pasts.forEach((p, b) => block.set(p[at]!.data as CacheData, b * pastLength * row));
      feeds[name] = new ort.Tensor(g.cacheDType, block, [batch, pastLength, heads, headDim]);
    }
  });
  const out = await ctx.run(feeds, topK > 0 && ctx.inGraph !== null, width);
  const logits = out.logits!;
  const rowsReturned = logits.dims[logits.dims.length - 2]!;
  const pieces = jobs.map((job, b) => ctx.piece(out, b, rowsReturned, job.wanted, topK, pads[b]!.right));
  // Only now, with every piece checked, do the caches change.
  const newRows = ctx.incremental.newOutputs.flatMap(([k, v]) => [out[k]!.data as CacheData, out[v]!.data as CacheData]);
  jobs.forEach((job, b) => {
    const end = ((b + 1) * newLength - pads[b]!.right) * row;
    const rows = newRows.map((data) => data.subarray(end - job.ids.length * row, end));
    (job.slot.cache as IncrementalKVCache).appendRows(rows, job.slot.history.length + job.ids.length);
  });
  return pieces;
}

/**
 * Ops whose result for one sequence of a batch depends on the others: dynamic quantization
 * picks one scale (and zero point) from the whole input tensor (q8 exports from
 * `quantize_dynamic`).
 */
export const BATCH_COUPLING_OPS: readonly string[] = ['DynamicQuantizeLinear', 'DynamicQuantizeMatMul', 'DynamicQuantizeLSTM'];

/** The first op of `ops` that couples the sequences of a batch, or null. */
export function batchCouplingOp(ops: ReadonlySet<string>): string | null {
  return BATCH_COUPLING_OPS.find((op) => ops.has(op)) ?? null;
}
