/**
 * Where a scoring pass should rank its rows: in JavaScript over the fetched logits, or inside
 * the graph (the TopK + row-sum nodes addInGraphScores appends at load). Each graph variant is
 * its own session over the bundled qwen-adder (151,669 columns, incremental-cache rewrite as
 * loadModel does); a 6-token pass from an empty cache, 6 rows, top-10, one onnxruntime thread,
 * CPU time per pass, the variants interleaved round by round.
 *
 * onnxruntime runs every node of a graph whatever is fetched (fetching decides only what is
 * copied out), so each variant is measured on a graph holding only its own nodes.
 *
 *   npm run bench:topk
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { fields, WireWriter } from '../src/runtime/protobufWire.js';
import { intsAttribute, onnxNode, valueInfo, ONNX_FLOAT } from '../src/runtime/onnxProto.js';
import { addLogitsToKeep } from '../src/runtime/logitsRewrite.js';
import { addInGraphScores } from '../src/runtime/topKRewrite.js';
import { rewriteForIncrementalCache } from '../src/runtime/cacheRewrite.js';
import { logSumExp, topKIfFinite } from '../src/member/distribution.js';
import { packageRoot } from '../src/demo/models.js';

const WIDTH = 151669;
const ROWS = 6;
const K = 10;
const original = readFileSync(join(packageRoot(), 'models', 'qwen-adder', 'onnx', 'model.onnx'));
const base = addLogitsToKeep(original) ?? original;

/** ReduceLogSumExp appended after the logits (measured for the normalizer; not used by the library). */
function withLogSumExp(model: Uint8Array): Uint8Array {
  const top = fields(model);
  const g = top.find((f) => f.field === 7 && f.wireType === 2)!;
  const body = new WireWriter().raw(model.subarray(g.payloadStart, g.end));
  body.bytes(1, onnxNode('bench_', 'ReduceLogSumExp', ['logits'], ['lse'], [intsAttribute('axes', [-1]), new WireWriter().bytes(1, 'keepdims').varint(3, 0).varint(20, 2)]));
  body.bytes(12, valueInfo('lse', ONNX_FLOAT, ['b', 's']));
  const out = new WireWriter();
  for (const f of top) out.raw(f === g ? new WireWriter().bytes(7, body).finish() : model.subarray(f.start, f.end));
  return out.finish();
}

interface Variant {
  label: string;
  session: ort.InferenceSession;
  fetch: string[];
  post: (o: Record<string, ort.Tensor>) => void;
  cpuMs: number[];
}

let sink = 0;
const ids = [9707, 11, 1879, 374, 264, 1273];
async function variant(label: string, model: Uint8Array, fetch: (newRows: string[]) => string[], post: Variant['post']): Promise<Variant> {
  const cache = rewriteForIncrementalCache(model)!;
  const session = await ort.InferenceSession.create(cache.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  return { label, session, fetch: fetch(cache.names.newOutputs.flat()), post, cpuMs: [] };
}
function feeds(s: ort.InferenceSession): Record<string, ort.Tensor> {
  const f: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ROWS]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(ROWS).fill(1n), [1, ROWS]),
    logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(ROWS)), []),
  };
  if (s.inputNames.includes('position_ids')) f.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: ROWS }, (_, i) => BigInt(i)), [1, ROWS]);
  for (const name of s.inputNames) {
    if (name.endsWith('_k')) f[name] = new ort.Tensor('int64', BigInt64Array.of(BigInt(K)), [1]);
    if (!name.startsWith('past_key_values')) continue;
    const meta = (s.inputMetadata as unknown as Array<{ name: string; shape: unknown[] }>).find((m) => m.name === name)!;
    f[name] = new ort.Tensor('float32', new Float32Array(0), meta.shape.map((d: unknown) => (typeof d === 'number' ? d : 0)));
  }
  return f;
}

const scored = addInGraphScores(base)!;
const n = scored.names;
const eachRow = (o: Record<string, ort.Tensor>, f: (row: Float32Array) => number) => {
  const d = o.logits!.data as Float32Array;
  for (let r = 0; r < ROWS; r++) sink += f(d.subarray(r * WIDTH, (r + 1) * WIDTH));
};
const inGraph = (o: Record<string, ort.Tensor>) => {
  sink += Number((o[n.topIds]!.data as BigInt64Array)[0]) + (Number.isFinite((o[n.rowSums]!.data as Float32Array)[0]) ? 1 : 0);
};
const variants = [
  await variant('logits; top-k (with the NaN/Inf check) in JavaScript', base, (r) => ['logits', ...r], (o) => eachRow(o, (row) => topKIfFinite(row, K)!.ids[0]!)),
  await variant('logits; in-graph TopK + row sums — what scoring passes do', scored.bytes, (r) => ['logits', n.topLogits, n.topIds, n.rowSums, ...r], inGraph),
  await variant('in-graph TopK + row sums only (logits not fetched)', scored.bytes, (r) => [n.topLogits, n.topIds, n.rowSums, ...r], inGraph),
  await variant('logits; normalizer in JavaScript', base, (r) => ['logits', ...r], (o) => eachRow(o, logSumExp)),
  await variant('in-graph ReduceLogSumExp only', withLogSumExp(base), (r) => ['lse', ...r], (o) => (sink += (o.lse!.data as Float32Array)[0]!)),
];
const ROUNDS = 10;
const PER_ROUND = 30;
for (const v of variants) for (let i = 0; i < 10; i++) v.post(await v.session.run(feeds(v.session), v.fetch));
for (let round = 0; round < ROUNDS; round++) {
  for (const v of round % 2 ? [...variants].reverse() : variants) {
    const f = feeds(v.session);
    const c0 = process.cpuUsage();
    for (let i = 0; i < PER_ROUND; i++) v.post(await v.session.run(f, v.fetch));
    const c = process.cpuUsage(c0);
    v.cpuMs.push((c.user + c.system) / 1000 / PER_ROUND);
  }
}
if (!(sink > 0)) throw new Error('no result');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`| what a ${ROWS}-row pass fetches and does | CPU per pass (median of ${ROUNDS} rounds) |`);
console.log('|---|---:|');
for (const v of variants) console.log(`| ${v.label} | ${median(v.cpuMs).toFixed(2)} ms |`);
for (const v of variants) await v.session.release();
