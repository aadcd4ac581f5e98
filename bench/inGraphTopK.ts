/**
 * Measures whether top-k and the normalizer should be computed inside the graph: TopK and
 * ReduceLogSumExp appended to the bundled qwen-adder (151,669 columns), fetching only their
 * outputs, against fetching the logits and summarizing them in JavaScript (what the worker does).
 * A 6-token pass from an empty cache, 6 rows, one onnxruntime thread, CPU time per pass.
 *
 *   npm run bench:topk
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { fields, WireWriter } from '../src/runtime/protobufWire.js';
import { onnxNode, intsAttribute, valueInfo, ONNX_FLOAT, ONNX_INT64 } from '../src/runtime/onnxProto.js';
import { addLogitsToKeep } from '../src/runtime/logitsRewrite.js';
import { rewriteForIncrementalCache } from '../src/runtime/cacheRewrite.js';
import { topKIfFinite, logSumExp } from '../src/runtime/distribution.js';
import { packageRoot } from '../src/demo/models.js';
const P = 'x_';
const orig = readFileSync(join(packageRoot(), 'models', 'qwen-adder', 'onnx', 'model.onnx'));
const base = addLogitsToKeep(orig) ?? orig;
function withTopK(model: Uint8Array): Uint8Array {
  const top = fields(model);
  const g = top.find((f) => f.field === 7 && f.wireType === 2)!;
  const body = new WireWriter().raw(model.subarray(g.payloadStart, g.end));
  body.bytes(1, onnxNode(P, 'TopK', ['logits', 'top_k'], ['top_values', 'top_indices'], [new WireWriter().bytes(1, 'axis').varint(3, -1).varint(20, 2)]));
  body.bytes(1, onnxNode(P, 'ReduceLogSumExp', ['logits'], ['lse'], [intsAttribute('axes', [-1]), new WireWriter().bytes(1, 'keepdims').varint(3, 0).varint(20, 2)]));
  body.bytes(11, valueInfo('top_k', ONNX_INT64, [1]));
  body.bytes(12, valueInfo('top_values', ONNX_FLOAT, ['b', 's', 'k']));
  body.bytes(12, valueInfo('top_indices', ONNX_INT64, ['b', 's', 'k']));
  body.bytes(12, valueInfo('lse', ONNX_FLOAT, ['b', 's']));
  const out = new WireWriter();
  for (const f of top) out.raw(f === g ? new WireWriter().bytes(7, body).finish() : model.subarray(f.start, f.end));
  return out.finish();
}
const cache = rewriteForIncrementalCache(withTopK(base))!;
const s = await ort.InferenceSession.create(cache.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const ids = [9707, 11, 1879, 374, 264, 1273];
function feeds(n: number) {
  const f: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.slice(0, n), BigInt), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(n)), []),
    top_k: new ort.Tensor('int64', BigInt64Array.of(10n), [1]),
  };
  if (s.inputNames.includes('position_ids')) f.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [1, n]);
  for (const name of s.inputNames) if (name.startsWith('past_key_values')) {
    const meta = (s.inputMetadata as unknown as Array<{ name: string; shape: unknown[] }>).find((m) => m.name === name)!;
    const shape = meta.shape.map((d: unknown) => (typeof d === 'number' ? d : 0));
    f[name] = new ort.Tensor('float32', new Float32Array(0), shape);
  }
  return f;
}
const newRows = cache.names.newOutputs.flat();
async function time(label: string, fetch: string[], post: (o: Record<string, ort.Tensor>) => void) {
  for (let i = 0; i < 20; i++) post(await s.run(feeds(6), fetch));
  const c0 = process.cpuUsage(); const t0 = performance.now();
  const N = 200;
  for (let i = 0; i < N; i++) post(await s.run(feeds(6), fetch));
  const c = process.cpuUsage(c0);
  console.log(label, ((performance.now() - t0) / N).toFixed(3), 'ms wall,', ((c.user + c.system) / 1000 / N).toFixed(3), 'ms CPU per 6-row pass');
}
let sink = 0;
await time('fetch logits + JS top-k (+finite check)', ['logits', ...newRows], (o) => { const d = o.logits!.data as Float32Array; const w = 151669; for (let r = 0; r < 6; r++) sink += topKIfFinite(d.subarray(r * w, (r + 1) * w), 10)!.ids[0]!; });
await time('fetch logits + JS top-k + JS logSumExp', ['logits', ...newRows], (o) => { const d = o.logits!.data as Float32Array; const w = 151669; for (let r = 0; r < 6; r++) { const row = d.subarray(r * w, (r + 1) * w); sink += topKIfFinite(row, 10)!.ids[0]! + logSumExp(row); } });
await time('in-graph TopK + ReduceLogSumExp, logits not fetched', ['top_values', 'top_indices', 'lse', ...newRows], (o) => { sink += Number((o.top_indices!.data as BigInt64Array)[0]); });
await time('in-graph, logits fetched too', ['logits', 'top_values', 'top_indices', 'lse', ...newRows], (o) => { sink += Number((o.top_indices!.data as BigInt64Array)[0]); });
if (!(sink > 0)) throw new Error('no result');
