/**
 * The checks of the conformance run (see run.ts): one exported folder against PyTorch's logits
 * and against onnxruntime-node running the same file as exported; a two-model SAFE generation.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../src/runtime/loadModel.js';
import type { CausalLM } from '../../src/runtime/causalLM.js';
import { argmax, float16ToFloat32 } from '../../src/member/distribution.js';
import { readSkeleton } from '../../src/runtime/modelSkeleton.js';
import { addLogitsToKeep, keptHeadOps } from '../../src/runtime/logitsRewrite.js';
import { SafeEnsemble } from '../../src/ensemble/safeEnsemble.js';
import { TextTokenizer } from '../../src/text/tokenizer.js';

export interface BuiltVariant {
  ok: boolean;
  error?: string;
  file: string;
  dtype: string | null;
  ops?: string[];
}
export interface Reference {
  ids: number[];
  greedy: number[];
}
export type Manifest = Record<string, { vocab_size: number; reference: Reference[]; variants: Record<string, BuiltVariant> }>;

export interface FolderReport {
  arch: string;
  variant: string;
  loads: boolean;
  error?: string;
  /** Max |Δlogit| against PyTorch (the fp32 model the export came from). */
  torch: { prefill: number; decode: number } | null;
  /** Max |Δlogit| against onnxruntime-node running the file as exported. */
  ort: { prefill: number; decode: number } | null;
  greedy: { vsOrt: boolean; vsTorch: boolean | null } | null;
  /** Prefill rows the head computes for a one-row read, e.g. "1 of 12 (MatMulNBits)". */
  rows: string | null;
  /** loadModel ÷ InferenceSession.create, and the tokenizer alone ÷ create. */
  loadRatio: { load: number; tokenizer: number } | null;
  inspect: string | null;
  /**
   * Both prompts decoded at once (their passes batched, pasts of different lengths) against each
   * alone: max |Δlogit| over every step's row, whether the greedy tokens agree, and the batched
   * passes run (0: the graph takes turns).
   */
  batched: { maxDiff: number; greedySame: boolean; batchedPasses: number } | null;
  verdict: string;
}

const STEPS = 20;
/** Variants whose weights are PyTorch's fp32 ones: their greedy continuation must be PyTorch's. */
const FP32_WEIGHTS = new Set(['fp32', 'external', 'merged', 'optimized', 'gqa']);

/** The file as exported, run step by step with onnxruntime-node: the reference for our runtime. */
class RawDecoder {
  private past = new Map<string, ort.Tensor>();
  private length = 0;

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly lm: CausalLM,
  ) {}

  static async open(file: string, lm: CausalLM): Promise<RawDecoder> {
    return new RawDecoder(await ort.InferenceSession.create(file, { intraOpNumThreads: 2 }), lm);
  }

  reset(): void {
    this.past.clear();
    this.length = 0;
  }

  /** Runs `ids` after what came before; returns every new row as float32 (rows × width). */
  async step(ids: number[]): Promise<{ rows: Float32Array; width: number }> {
    const g = this.lm.info.graph;
    const n = ids.length;
    const total = this.length + n;
    const feeds: Record<string, ort.Tensor> = {};
    const int = (values: number[], dims: number[]) => (g.idsDType === 'int32' ? new ort.Tensor('int32', Int32Array.from(values), dims) : new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims));
    feeds.input_ids = int(ids, [1, n]);
    if (g.hasAttentionMask) feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]);
    if (g.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(this.length + i))), [1, n]);
    if (g.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.from([this.length > 0 ? 1 : 0]), [1]);
    const { numKeyValueHeads: heads, headDim } = this.lm.info;
    for (const [k, v] of g.pastNames) {
      for (const name of [k, v]) {
        feeds[name] = this.past.get(name) ?? (g.cacheDType === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), [1, heads, 0, headDim]) : new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]));
      }
    }
    const out = await this.session.run(feeds);
    g.pastNames.forEach(([k, v], i) => {
      this.past.set(k, out[g.presentNames[i]![0]]!);
      this.past.set(v, out[g.presentNames[i]![1]]!);
    });
    this.length = total;
    const logits = out.logits!;
    const width = Number(logits.dims[2]);
    const data = logits.type === 'float16' ? float16ToFloat32(logits.data as Uint16Array) : (logits.data as Float32Array);
    return { rows: data.subarray(data.length - n * width), width };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Max |a - b| over the first `columns` columns (the tokenizer's ids: padding columns are masked in ours). */
function maxDiff(a: Float32Array, b: Float32Array, width: number, rows: number, widthB: number, columns: number): number {
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < Math.min(width, widthB, columns); c++) {
      const x = a[r * width + c]!;
      const y = b[r * widthB + c]!;
      if (Number.isFinite(x) && Number.isFinite(y)) worst = Math.max(worst, Math.abs(x - y));
    }
  }
  return worst;
}

function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

/** Greedy decoding of every prompt on its own sequence: alone one after another, then all at once. */
async function batchedAgainstAlone(lm: CausalLM, prompts: number[][], columns: number): Promise<NonNullable<FolderReport['batched']>> {
  const decode = async (ids: number[]) => {
    const seq = lm.openSequence();
    try {
      const rows: Float32Array[] = [];
      const tokens: number[] = [];
      let logits = await seq.forward(ids, { logits: 'last' });
      for (let i = 0; i < STEPS; i++) {
        rows.push(logits.data.slice(0, Math.min(columns, logits.vocabSize)));
        const next = logits.argmax(-1);
        tokens.push(next);
        if (i + 1 < STEPS) logits = await seq.forward([next], { logits: 'last' });
      }
      return { rows, tokens };
    } finally {
      seq.close();
    }
  };
  const alone: Array<{ rows: Float32Array[]; tokens: number[] }> = [];
  for (const ids of prompts) alone.push(await decode(ids));
  const before = lm.traffic.batchedPasses;
  const together = await Promise.all(prompts.map((ids) => decode(ids)));
  let worst = 0;
  together.forEach((run, p) => run.rows.forEach((row, step) => row.forEach((x, c) => {
    const y = alone[p]!.rows[step]![c]!;
    if (Number.isFinite(x) && Number.isFinite(y)) worst = Math.max(worst, Math.abs(x - y));
  })));
  return { maxDiff: worst, greedySame: together.every((run, p) => run.tokens.join() === alone[p]!.tokens.join()), batchedPasses: lm.traffic.batchedPasses - before };
}

async function greedyOurs(lm: CausalLM, ids: number[]): Promise<number[]> {
  lm.crop(0);
  let logits = await lm.forward(ids, { logits: 'last' });
  const out: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const next = logits.argmax(-1);
    out.push(next);
    if (i + 1 < STEPS) logits = await lm.forward([next], { logits: 'last' });
  }
  return out;
}

async function greedyRaw(raw: RawDecoder, ids: number[], columns: number): Promise<number[]> {
  raw.reset();
  let step = await raw.step(ids);
  const out: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const next = argmax(step.rows.subarray(step.rows.length - step.width).subarray(0, columns));
    out.push(next);
    if (i + 1 < STEPS) step = await raw.step([next]);
  }
  return out;
}

/**
 * loadModel (inline) ÷ InferenceSession.create on the same file, and the tokenizer's load alone ÷
 * create (loadModel loads it, create does not), interleaved, medians of 3.
 */
async function loadRatio(dir: string, file: string): Promise<{ load: number; tokenizer: number }> {
  const times: Record<string, number[]> = { create: [], load: [], tokenizer: [] };
  for (let round = 0; round < 3; round++) {
    for (const kind of round % 2 ? ['tokenizer', 'load', 'create'] : ['create', 'load', 'tokenizer']) {
      const t0 = performance.now();
      if (kind === 'create') await (await ort.InferenceSession.create(file, { intraOpNumThreads: 2 })).release();
      else if (kind === 'load') await (await loadModel(dir, { execution: 'inline', threads: 2, onWarning: () => undefined })).dispose();
      else await TextTokenizer.fromFolder(dir);
      times[kind]!.push(performance.now() - t0);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
  return { load: median(times.load!) / median(times.create!), tokenizer: median(times.tokenizer!) / median(times.create!) };
}

/** Head ops the `logits_to_keep` slice feeds in the file, or null when the file gets none. */
function headOps(file: string, hasKeepInput: boolean): string[] | null {
  if (hasKeepInput) return ['exported'];
  const model = addLogitsToKeep(readSkeleton(file, 'weights').bytes);
  return model ? keptHeadOps(model) : null;
}

export async function checkFolder(input: { arch: string; variant: string; dir: string; built: BuiltVariant; reference: Reference[]; referenceDir: string }): Promise<FolderReport> {
  const { arch, variant, dir, built, reference, referenceDir } = input;
  const report: FolderReport = { arch, variant, loads: false, torch: null, ort: null, greedy: null, rows: null, loadRatio: null, inspect: null, batched: null, verdict: '' };
  if (!built.ok) {
    report.error = `not built: ${built.error ?? 'unknown'}`;
    report.verdict = report.error;
    return report;
  }
  const file = join(dir, 'onnx', built.file);
  let lm: CausalLM;
  try {
    lm = await loadModel(dir, { execution: 'inline', threads: 2, onWarning: (w) => console.error(w) });
  } catch (error) {
    report.error = (error as Error).message.slice(0, 300);
    report.verdict = `does not load: ${report.error}`;
    return report;
  }
  report.loads = true;
  const raw = await RawDecoder.open(file, lm);
  try {
    const columns = Math.min(lm.info.vocabSize, lm.tokenizer.vocabSize);
    let torchPrefill = 0;
    let torchDecode = 0;
    let ortPrefill = 0;
    let ortDecode = 0;
    let vsOrt = true;
    let vsTorch: boolean | null = FP32_WEIGHTS.has(variant) ? true : null;
    for (const [k, ref] of reference.entries()) {
      const ids = ref.ids;
      const n = ids.length;
      const torchWidth = readF32(join(referenceDir, `prefill_${k}.f32`)).length / n;
      // Every prefill row, from an empty cache.
      lm.crop(0);
      const ours = await lm.forward(ids, { logits: 'all' });
      raw.reset();
      const theirs = await raw.step(ids);
      torchPrefill = Math.max(torchPrefill, maxDiff(ours.data, readF32(join(referenceDir, `prefill_${k}.f32`)), ours.vocabSize, n, torchWidth, columns));
      ortPrefill = Math.max(ortPrefill, maxDiff(ours.data, theirs.rows, ours.vocabSize, n, theirs.width, columns));
      // Cached decode: all but the last 3 tokens, then one at a time.
      lm.crop(0);
      raw.reset();
      await lm.forward(ids.slice(0, n - 3), { logits: 'last' });
      await raw.step(ids.slice(0, n - 3));
      const torchDecodeRows = readF32(join(referenceDir, `decode_${k}.f32`));
      for (let j = 0; j < 3; j++) {
        const row = await lm.forward([ids[n - 3 + j]!], { logits: 'last' });
        const rawRow = await raw.step([ids[n - 3 + j]!]);
        torchDecode = Math.max(torchDecode, maxDiff(row.data, torchDecodeRows.subarray(j * torchWidth, (j + 1) * torchWidth), row.vocabSize, 1, torchWidth, columns));
        ortDecode = Math.max(ortDecode, maxDiff(row.data, rawRow.rows, row.vocabSize, 1, rawRow.width, columns));
      }
      const greedy = await greedyOurs(lm, ids);
      if (greedy.join() !== (await greedyRaw(raw, ids, columns)).join()) vsOrt = false;
      if (vsTorch !== null && greedy.join() !== ref.greedy.join()) vsTorch = false;
    }
    report.torch = { prefill: torchPrefill, decode: torchDecode };
    report.ort = { prefill: ortPrefill, decode: ortDecode };
    report.greedy = { vsOrt, vsTorch };
    report.batched = await batchedAgainstAlone(lm, reference.map((r) => r.ids), columns);
    const ops = headOps(file, lm.info.graph.logitsToKeepInput !== null && !lm.info.logitsToKeepAdded);
    const n = reference[0]!.ids.length;
    report.rows = ops ? `1 of ${n} (${ops.join(', ')})` : `${n} of ${n}`;
  } finally {
    await raw.release();
    await lm.dispose();
  }
  report.loadRatio = await loadRatio(dir, file);
  try {
    report.inspect = execFileSync(process.execPath, ['bin/safe-ensemble.cjs', 'inspect', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    report.inspect = null;
    report.error = `inspect failed: ${String((error as { stderr?: string }).stderr ?? error).slice(0, 200)}`;
  }
  const problems: string[] = [];
  if (!report.greedy.vsOrt) problems.push('greedy differs from onnxruntime-node');
  if (report.greedy.vsTorch === false) problems.push('greedy differs from PyTorch');
  if (report.rows && !report.rows.startsWith('1 of')) problems.push('prefill computes every row');
  if (report.ort && (report.ort.prefill > 0 || report.ort.decode > 0)) problems.push(`logits differ from onnxruntime-node's by up to ${Math.max(report.ort.prefill, report.ort.decode)}`);
  if (report.inspect === null) problems.push('inspect failed');
  if (report.batched && !report.batched.greedySame) problems.push('greedy differs when batched with another sequence');
  report.verdict = problems.length ? problems.join('; ') : 'ok';
  return report;
}

export interface PairReport {
  members: string[];
  ok: boolean;
  error?: string;
  tokens?: number;
  ensembleRate?: number;
  sameWithoutCache: boolean;
}

/** A two-model SAFE generation (greedy) on a mixed pair; again without the incremental cache: same text and statistics. */
export async function checkPair(a: string, b: string, prompt: string): Promise<PairReport> {
  const members = [a, b].map((p) => p.split('/').slice(-2).join('/'));
  const runs = [];
  try {
    for (const incrementalCache of [true, false]) {
      const ensemble = await SafeEnsemble.load({ models: [a, b], strategy: 'safe', loadOptions: { incrementalCache } });
      try {
        const result = await ensemble.generate(prompt, { maxNewTokens: 24, rawPrompt: true });
        // Drafting ahead depends on timing (see EnsembleStats.pipeline); everything else must be equal.
        const { time: _time, pipeline: _pipeline, ...stats } = result.stats;
        runs.push({ text: result.text, stats });
      } finally {
        await ensemble.dispose();
      }
    }
  } catch (error) {
    return { members, ok: false, error: (error as Error).message.slice(0, 200), sameWithoutCache: false };
  }
  const same = JSON.stringify(runs[0]) === JSON.stringify(runs[1]);
  return { members, ok: true, tokens: runs[0]!.stats.generatedTokens, ensembleRate: runs[0]!.stats.ensembleRatePct, sameWithoutCache: same };
}
