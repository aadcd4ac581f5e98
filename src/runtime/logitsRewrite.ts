/**
 * A load-time rewrite that gives a decoder graph a `logits_to_keep` input when it lacks one:
 * the hidden states are sliced to the last N positions before the LM head, so a prefill computes
 * one logits row instead of one per prompt token (with a 150k vocabulary the LM head is most of
 * a long prefill). The slice goes before the op that first sees the last hidden state: the
 * head's MatMul (or MatMulNBits, FusedMatMul, as quantized and optimized exports write it),
 * found by walking back from `logits` through row-wise ops — Identity, Cast, Tanh, and
 * Div/Mul/Add/Sub with a constant operand (Gemma 2's softcap). Anything else runs as exported.
 * @module
 */
import { int64Constant as int64ConstantOf, onnxNode } from './onnxProto.js';
import { fields, WireWriter, type WireField } from './protobufWire.js';

const PREFIX = 'lse_keep_';
/** The input the rewritten graph takes (the name transformers uses). */
export const ADDED_LOGITS_TO_KEEP = 'logits_to_keep';

interface NodeInfo {
  field: WireField;
  opType: string;
  inputs: string[];
  outputs: string[];
}

function decode(buf: Uint8Array, f: WireField): string {
  return new TextDecoder().decode(buf.subarray(f.payloadStart, f.end));
}

function readNode(buf: Uint8Array, field: WireField): NodeInfo {
  const node: NodeInfo = { field, opType: '', inputs: [], outputs: [] };
  for (const f of fields(buf, field.payloadStart, field.end)) {
    if (f.wireType !== 2) continue;
    if (f.field === 1) node.inputs.push(decode(buf, f));
    else if (f.field === 2) node.outputs.push(decode(buf, f));
    else if (f.field === 4) node.opType = decode(buf, f);
  }
  return node;
}

/** Ops that compute each row of their first input on its own: the head's matrix product. */
const HEAD_OPS = new Set(['MatMul', 'MatMulNBits', 'FusedMatMul']);
/** Row-wise ops on the way from the head to `logits`, with their data input first. */
const UNARY_ROW_WISE = new Set(['Identity', 'Cast', 'Tanh']);
const BINARY_ROW_WISE = new Set(['Div', 'Mul', 'Add', 'Sub']);

/** Names of initializers and of Constant nodes' outputs: the operands a row-wise op may take. */
function constantNames(model: Uint8Array, graphFields: WireField[], nodes: NodeInfo[]): Set<string> {
  const names = new Set<string>();
  for (const f of graphFields) {
    if (f.field !== 5 || f.wireType !== 2) continue;
    const name = fields(model, f.payloadStart, f.end).find((x) => x.field === 8 && x.wireType === 2);
    if (name) names.add(decode(model, name));
  }
  for (const n of nodes) if (n.opType === 'Constant') for (const o of n.outputs) names.add(o);
  return names;
}

/** The node that first sees the last hidden state on the way to `logits`, or null. */
function headOf(producer: Map<string, NodeInfo>, constants: Set<string>): NodeInfo | null {
  let n = producer.get('logits');
  for (let steps = 0; n && steps < 16; steps++) {
    if (HEAD_OPS.has(n.opType)) return n.inputs.length >= 2 && !constants.has(n.inputs[0]!) ? n : null;
    let next: string | undefined;
    if (UNARY_ROW_WISE.has(n.opType)) next = n.inputs[0];
    else if (BINARY_ROW_WISE.has(n.opType) && n.inputs.length === 2) {
      const [a, b] = n.inputs as [string, string];
      // Exactly one operand varies with the input (a scalar or per-column constant the other).
      if (constants.has(a) !== constants.has(b)) next = constants.has(a) ? b : a;
    }
    n = next === undefined ? undefined : producer.get(next);
  }
  return null;
}

const node = (opType: string, inputs: string[], output: string, attributes: WireWriter[] = []) => onnxNode(PREFIX, opType, inputs, [output], attributes);
const int64Constant = (output: string, values: bigint[]) => int64ConstantOf(PREFIX, output, values);

/**
 * The model with a scalar int64 `logits_to_keep` input (0 keeps every row, as in transformers),
 * or null when the graph already has one or no head is found (see the module notes).
 */
export function addLogitsToKeep(model: Uint8Array): Uint8Array | null {
  const top = fields(model);
  const graphField = top.find((f) => f.field === 7 && f.wireType === 2);
  if (!graphField) return null;
  const graphFields = fields(model, graphField.payloadStart, graphField.end);
  const nodes: NodeInfo[] = [];
  for (const f of graphFields) {
    if (f.wireType !== 2) continue;
    if (f.field === 1) nodes.push(readNode(model, f));
    else if (f.field === 11) {
      const name = fields(model, f.payloadStart, f.end).find((x) => x.field === 1 && x.wireType === 2);
      if (name && /^(num_)?logits_to_keep$/.test(decode(model, name))) return null;
    }
  }
  const producer = new Map<string, NodeInfo>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  const constants = constantNames(model, graphFields, nodes);
  const head = headOf(producer, constants);
  if (!head) return null;
  const hidden = head.inputs[0]!;
  const kept = `${PREFIX}hidden`;

  // The head reads the kept positions: hidden[..., -keep:, :] (the second-to-last axis is the
  // sequence whatever the rank, since logits are [..., sequence, vocab]).
  const rewrittenHead = new WireWriter();
  let replaced = false;
  for (const f of fields(model, head.field.payloadStart, head.field.end)) {
    if (!replaced && f.field === 1 && f.wireType === 2) {
      rewrittenHead.bytes(1, kept);
      replaced = true;
    } else rewrittenHead.raw(model.subarray(f.start, f.end));
  }
  const tail = new WireWriter();
  tail.bytes(1, int64Constant(`${PREFIX}shape_1`, [1n]));
  tail.bytes(1, int64Constant(`${PREFIX}end`, [9223372036854775807n]));
  tail.bytes(1, int64Constant(`${PREFIX}axis`, [-2n]));
  tail.bytes(1, node('Reshape', [ADDED_LOGITS_TO_KEEP, `${PREFIX}shape_1`], `${PREFIX}keep_1d`));
  tail.bytes(1, node('Neg', [`${PREFIX}keep_1d`], `${PREFIX}start`));
  tail.bytes(1, node('Slice', [hidden, `${PREFIX}start`, `${PREFIX}end`, `${PREFIX}axis`], kept));
  // A scalar int64 input: a tensor type with an empty shape.
  const scalar = new WireWriter().bytes(1, new WireWriter().varint(1, 7).bytes(2, new Uint8Array(0)));
  tail.bytes(11, new WireWriter().bytes(1, ADDED_LOGITS_TO_KEEP).bytes(2, scalar));

  const body = new WireWriter();
  for (const f of graphFields) {
    if (f === head.field) body.bytes(1, rewrittenHead);
    else body.raw(model.subarray(f.start, f.end));
  }
  body.raw(tail.finish());
  const out = new WireWriter();
  for (const f of top) {
    if (f === graphField) out.bytes(7, body);
    else out.raw(model.subarray(f.start, f.end));
  }
  return out.finish();
}
