/**
 * A load-time rewrite that gives a decoder graph a `logits_to_keep` input when it lacks one:
 * the hidden states are sliced to the last N positions before the LM head, so a prefill computes
 * one logits row instead of one per prompt token (with a 150k vocabulary the LM head is most of
 * a long prefill). The slice goes before the op that first sees the last hidden state: the
 * head's MatMul (or MatMulNBits, FusedMatMul, DynamicQuantizeMatMul, as quantized and optimized
 * exports write it), found by walking back from `logits` through row-wise ops — Identity, Cast,
 * Tanh, and Div/Mul/Add/Sub with a constant operand (Gemma 2's softcap). A dynamically
 * quantized head (`quantize_dynamic`: DynamicQuantizeLinear → MatMulInteger → Cast → Mul by the
 * scales' product) is sliced before its DynamicQuantizeLinear, whose per-tensor scale is then
 * taken over the kept rows only — as in a decode step, which quantizes its one row alone.
 * Anything else runs as exported.
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
const HEAD_OPS = new Set(['MatMul', 'MatMulNBits', 'FusedMatMul', 'DynamicQuantizeMatMul']);
/** Integer heads whose first input is the output of a DynamicQuantizeLinear of the hidden state. */
const INTEGER_HEAD_OPS = new Set(['MatMulInteger', 'MatMulIntegerToFloat']);
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

/**
 * Walking back from `target`: the node that first sees the last hidden state (a head op), or
 * an If whose branches compute it (a merged decoder), with the If output the walk came from.
 */
function headOf(producer: Map<string, NodeInfo>, consumers: Map<string, number>, constants: Set<string>, target: string): { node: NodeInfo; via: string } | null {
  let name = target;
  let n = producer.get(name);
  for (let steps = 0; n && steps < 16; steps++) {
    if (n.opType === 'If') return { node: n, via: name };
    if (HEAD_OPS.has(n.opType)) return n.inputs.length >= 2 && !constants.has(n.inputs[0]!) ? { node: n, via: name } : null;
    if (INTEGER_HEAD_OPS.has(n.opType)) {
      // Sliced before the quantizer, which then sees only the kept rows; nothing else may read its outputs.
      const quantizer = producer.get(n.inputs[0] ?? '');
      if (!quantizer || quantizer.opType !== 'DynamicQuantizeLinear' || quantizer.outputs[0] !== n.inputs[0] || consumers.get(n.inputs[0]!) !== 1) return null;
      return constants.has(quantizer.inputs[0]!) ? null : { node: quantizer, via: name };
    }
    let next: string | undefined;
    if (UNARY_ROW_WISE.has(n.opType)) next = n.inputs[0];
    else if (BINARY_ROW_WISE.has(n.opType) && n.inputs.length === 2) {
      const [a, b] = n.inputs as [string, string];
      // Exactly one operand varies with the input (a scalar or per-column constant the other),
      // or one is a dynamic quantizer's scale (times constants): a scalar for the whole tensor.
      if (constants.has(a) !== constants.has(b)) next = constants.has(a) ? b : a;
      else if (!constants.has(a) && isQuantizerScale(producer, constants, b)) next = a;
      else if (!constants.has(b) && isQuantizerScale(producer, constants, a)) next = b;
    }
    if (next === undefined) return null;
    name = next;
    n = producer.get(name);
  }
  return null;
}

/** Whether `name` is a DynamicQuantizeLinear's scale, possibly multiplied by constants (the weight's scale). */
function isQuantizerScale(producer: Map<string, NodeInfo>, constants: Set<string>, name: string): boolean {
  const n = producer.get(name);
  if (!n) return false;
  if (n.opType === 'DynamicQuantizeLinear') return n.outputs[1] === name;
  if (n.opType === 'Mul' && n.inputs.length === 2) {
    const [a, b] = n.inputs as [string, string];
    return (constants.has(a) && isQuantizerScale(producer, constants, b)) || (constants.has(b) && isQuantizerScale(producer, constants, a));
  }
  return false;
}

/**
 * The model with a scalar int64 `logits_to_keep` input (0 keeps every row, as in transformers),
 * or null when the graph already has one or no head is found (see the module notes).
 */
export function addLogitsToKeep(model: Uint8Array): Uint8Array | null {
  const top = fields(model);
  const graphField = top.find((f) => f.field === 7 && f.wireType === 2);
  if (!graphField) return null;
  for (const f of fields(model, graphField.payloadStart, graphField.end)) {
    if (f.field !== 11 || f.wireType !== 2) continue;
    const name = fields(model, f.payloadStart, f.end).find((x) => x.field === 1 && x.wireType === 2);
    if (name && /^(num_)?logits_to_keep$/.test(decode(model, name))) return null;
  }
  const body = rewriteGraph(model, graphField, 'logits', new Set(), PREFIX);
  if (!body) return null;
  // A scalar int64 input: a tensor type with an empty shape.
  const scalar = new WireWriter().bytes(1, new WireWriter().varint(1, 7).bytes(2, new Uint8Array(0)));
  body.bytes(11, new WireWriter().bytes(1, ADDED_LOGITS_TO_KEEP).bytes(2, scalar));
  const out = new WireWriter();
  for (const f of top) {
    if (f === graphField) out.bytes(7, body);
    else out.raw(model.subarray(f.start, f.end));
  }
  return out.finish();
}

/**
 * The body of `graph` with the hidden state sliced to the last `logits_to_keep` positions
 * before the head that computes its value `target`, or null when there is no such head. A head
 * inside an If (a merged decoder's branches) is rewritten in every branch; the branches read
 * `logits_to_keep` from the outer scope, as ONNX subgraphs may.
 */
function rewriteGraph(buf: Uint8Array, graph: WireField, target: string, outer: Set<string>, prefix: string): WireWriter | null {
  const graphFields = fields(buf, graph.payloadStart, graph.end);
  const nodes: NodeInfo[] = [];
  for (const f of graphFields) if (f.field === 1 && f.wireType === 2) nodes.push(readNode(buf, f));
  const producer = new Map<string, NodeInfo>();
  const consumers = new Map<string, number>();
  for (const n of nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  }
  const constants = new Set([...outer, ...constantNames(buf, graphFields, nodes)]);
  const found = headOf(producer, consumers, constants, target);
  if (!found) return null;
  const replacement = found.node.opType === 'If' ? rewriteBranches(buf, found.node, found.via, constants, prefix) : new WireWriter();
  if (!replacement) return null;
  const tail = new WireWriter();
  if (found.node.opType !== 'If') {
    // The head reads the kept positions: hidden[..., -keep:, :] (the second-to-last axis is the
    // sequence whatever the rank, since logits are [..., sequence, vocab]).
    const hidden = found.node.inputs[0]!;
    const kept = `${prefix}hidden`;
    let replaced = false;
    for (const f of fields(buf, found.node.field.payloadStart, found.node.field.end)) {
      if (!replaced && f.field === 1 && f.wireType === 2) {
        replacement.bytes(1, kept);
        replaced = true;
      } else replacement.raw(buf.subarray(f.start, f.end));
    }
    const node = (opType: string, inputs: string[], output: string) => onnxNode(prefix, opType, inputs, [output]);
    tail.bytes(1, int64ConstantOf(prefix, `${prefix}shape_1`, [1n]));
    tail.bytes(1, int64ConstantOf(prefix, `${prefix}end`, [9223372036854775807n]));
    tail.bytes(1, int64ConstantOf(prefix, `${prefix}axis`, [-2n]));
    tail.bytes(1, node('Reshape', [ADDED_LOGITS_TO_KEEP, `${prefix}shape_1`], `${prefix}keep_1d`));
    tail.bytes(1, node('Neg', [`${prefix}keep_1d`], `${prefix}start`));
    tail.bytes(1, node('Slice', [hidden, `${prefix}start`, `${prefix}end`, `${prefix}axis`], kept));
  }
  const body = new WireWriter();
  const slice = tail.finish();
  for (const f of graphFields) {
    if (f === found.node.field) {
      // Right before the head: its input exists by then, and subgraphs must stay topologically sorted.
      body.raw(slice);
      body.bytes(1, replacement);
    } else body.raw(buf.subarray(f.start, f.end));
  }
  return body;
}

/** An If node whose branches' heads (of the output `via`) are rewritten, or null when a branch has none. */
function rewriteBranches(buf: Uint8Array, ifNode: NodeInfo, via: string, constants: Set<string>, prefix: string): WireWriter | null {
  const at = ifNode.outputs.indexOf(via);
  const out = new WireWriter();
  let branches = 0;
  for (const f of fields(buf, ifNode.field.payloadStart, ifNode.field.end)) {
    if (f.field !== 5 || f.wireType !== 2) {
      out.raw(buf.subarray(f.start, f.end));
      continue;
    }
    const attrFields = fields(buf, f.payloadStart, f.end);
    const graph = attrFields.find((x) => x.field === 6 && x.wireType === 2);
    if (!graph) {
      out.raw(buf.subarray(f.start, f.end));
      continue;
    }
    const attrName = attrFields.find((x) => x.field === 1 && x.wireType === 2);
    const outputs = fields(buf, graph.payloadStart, graph.end).filter((x) => x.field === 12 && x.wireType === 2);
    const output = outputs[at] && fields(buf, outputs[at].payloadStart, outputs[at].end).find((x) => x.field === 1 && x.wireType === 2);
    if (!output) return null;
    const branch = rewriteGraph(buf, graph, decode(buf, output), constants, `${prefix}${attrName ? decode(buf, attrName) : 'branch'}_`);
    if (!branch) return null;
    branches++;
    const attribute = new WireWriter();
    for (const x of attrFields) {
      if (x === graph) attribute.bytes(6, branch);
      else attribute.raw(buf.subarray(x.start, x.end));
    }
    out.bytes(5, attribute);
  }
  return branches === 2 ? out : null;
}

/**
 * Where the prefill's rows are cut in a model {@link addLogitsToKeep} rewrote: for each reader of
 * the kept hidden state (one per branch of a merged decoder), its op type, through the Casts
 * before the head (`Cast → MatMulNBits`).
 */
export function keptHeadOps(model: Uint8Array): string[] {
  const nodes: NodeInfo[] = [];
  const collect = (graph: WireField) => {
    for (const f of fields(model, graph.payloadStart, graph.end)) {
      if (f.field !== 1 || f.wireType !== 2) continue;
      nodes.push(readNode(model, f));
      for (const a of fields(model, f.payloadStart, f.end)) {
        const sub = a.field === 5 && a.wireType === 2 ? fields(model, a.payloadStart, a.end).find((x) => x.field === 6 && x.wireType === 2) : undefined;
        if (sub) collect(sub);
      }
    }
  };
  const graph = fields(model).find((f) => f.field === 7 && f.wireType === 2);
  if (graph) collect(graph);
  const reader = new Map<string, NodeInfo>();
  for (const n of nodes) for (const i of n.inputs) if (!reader.has(i)) reader.set(i, n);
  const ops: string[] = [];
  for (const n of nodes) {
    if (!n.inputs.some((i) => i.startsWith(PREFIX) && i.endsWith('hidden'))) continue;
    const chain = [n.opType];
    for (let at = n; at.opType === 'Cast' && reader.has(at.outputs[0]!) && chain.length < 5; ) {
      at = reader.get(at.outputs[0]!)!;
      chain.push(at.opType);
    }
    ops.push(chain.join(' → '));
  }
  return ops;
}
