/**
 * A load-time rewrite that appends per-row scoring to a decoder graph: `TopK` over the logits
 * (k is an input, so one graph serves every top-k setting) and a `ReduceSum` per row, whose
 * result is finite when every logit is (NaN and ±Inf propagate through a sum). A scoring pass
 * fetches these next to the logits; sorting 151k-wide rows in onnxruntime costs a fraction of
 * doing it in JavaScript (`npm run bench:topk`). Passes that do not fetch them (forward()) do
 * not run them: onnxruntime executes only the nodes a fetched output needs.
 *
 * TopK's ties go to the lower index, as the JavaScript selection does, and its values are the
 * logits themselves (float16 logits are cast to float32 first, exactly as the converter does),
 * so summaries are bit-identical to those computed from the fetched rows.
 * @module
 */
import { int64Constant, intsAttribute, onnxNode, ONNX_FLOAT, ONNX_FLOAT16, ONNX_INT64, readValueInfo, valueInfo, varintAt } from './onnxProto.js';
import { fields, stringField, WireWriter } from './protobufWire.js';

const PREFIX = 'lse_scores_';

/** Names of what the rewrite adds. */
export interface InGraphScoreNames {
  /** int64 `[1]` input: how many entries per row. */
  k: string;
  /** float32 `[batch, rows, k]`: the k largest logits per row, largest first. */
  topLogits: string;
  /** int64 `[batch, rows, k]`: their ids. */
  topIds: string;
  /** float32 `[batch, rows]`: each row's sum (non-finite iff the row has NaN/Inf, or overflows). */
  rowSums: string;
}

/** Everything the rewrite adds carries this prefix (how a session's own inputs/outputs are told apart). */
export const IN_GRAPH_SCORES_PREFIX = PREFIX;

const NAMES: InGraphScoreNames = { k: `${PREFIX}k`, topLogits: `${PREFIX}top_logits`, topIds: `${PREFIX}top_ids`, rowSums: `${PREFIX}row_sums` };

/** The default-domain opset the model imports, or null when it declares none. */
function defaultOpset(model: Uint8Array, top: ReturnType<typeof fields>): number | null {
  for (const f of top) {
    if (f.field !== 8 || f.wireType !== 2) continue;
    const domain = stringField(model, f.payloadStart, f.end, 1) ?? '';
    if (domain !== '' && domain !== 'ai.onnx') continue;
    const version = fields(model, f.payloadStart, f.end).find((x) => x.field === 2 && x.wireType === 0);
    return version ? varintAt(model, version) : null;
  }
  return null;
}

/**
 * The model with top-k and row-sum outputs appended after `logits`, and their names; null when
 * the graph has no float32/float16 `logits` output, imports an opset older than 11 (TopK with a
 * k input and index tie-breaking), or already uses the names.
 */
export function addInGraphScores(model: Uint8Array): { bytes: Uint8Array; names: InGraphScoreNames } | null {
  const top = fields(model);
  const graphField = top.find((f) => f.field === 7 && f.wireType === 2);
  if (!graphField) return null;
  const opset = defaultOpset(model, top);
  if (opset === null || opset < 11) return null;
  const graphFields = fields(model, graphField.payloadStart, graphField.end);
  let logitsType = 0;
  let logitsRank = 0;
  for (const f of graphFields) {
    if (f.wireType !== 2 || (f.field !== 11 && f.field !== 12)) continue;
    const declared = readValueInfo(model, f.payloadStart, f.end);
    if (declared.name.startsWith(PREFIX)) return null;
    if (f.field === 12 && declared.name === 'logits') {
      logitsType = declared.elemType;
      logitsRank = declared.dims.length;
    }
  }
  if ((logitsType !== ONNX_FLOAT && logitsType !== ONNX_FLOAT16) || logitsRank !== 3) return null;

  const tail = new WireWriter();
  let scored = 'logits';
  if (logitsType === ONNX_FLOAT16) {
    scored = `${PREFIX}logits_float`;
    tail.bytes(1, onnxNode(PREFIX, 'Cast', ['logits'], [scored], [new WireWriter().bytes(1, 'to').varint(3, ONNX_FLOAT).varint(20, 2)]));
  }
  const lastAxis = new WireWriter().bytes(1, 'axis').varint(3, -1).varint(20, 2); // INT
  tail.bytes(1, onnxNode(PREFIX, 'TopK', [scored, NAMES.k], [NAMES.topLogits, NAMES.topIds], [lastAxis]));
  const keepdims = new WireWriter().bytes(1, 'keepdims').varint(3, 0).varint(20, 2);
  if (opset >= 13) {
    // From opset 13 the axes of ReduceSum are an input.
    tail.bytes(1, int64Constant(PREFIX, `${PREFIX}last_axis`, [-1n]));
    tail.bytes(1, onnxNode(PREFIX, 'ReduceSum', [scored, `${PREFIX}last_axis`], [NAMES.rowSums], [keepdims]));
  } else {
    tail.bytes(1, onnxNode(PREFIX, 'ReduceSum', [scored], [NAMES.rowSums], [intsAttribute('axes', [-1]), keepdims]));
  }
  tail.bytes(11, valueInfo(NAMES.k, ONNX_INT64, [1]));
  tail.bytes(12, valueInfo(NAMES.topLogits, ONNX_FLOAT, [`${PREFIX}batch`, `${PREFIX}rows`, `${PREFIX}k`]));
  tail.bytes(12, valueInfo(NAMES.topIds, ONNX_INT64, [`${PREFIX}batch`, `${PREFIX}rows`, `${PREFIX}k`]));
  tail.bytes(12, valueInfo(NAMES.rowSums, ONNX_FLOAT, [`${PREFIX}batch`, `${PREFIX}rows`]));

  const body = new WireWriter();
  for (const f of graphFields) body.raw(model.subarray(f.start, f.end));
  body.raw(tail.finish());
  const out = new WireWriter();
  for (const f of top) {
    if (f === graphField) out.bytes(7, body);
    else out.raw(model.subarray(f.start, f.end));
  }
  return { bytes: out.finish(), names: { ...NAMES } };
}
