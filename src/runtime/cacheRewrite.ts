/**
 * A load-time rewrite of a decoder graph so that KV-cache work does not grow with the context.
 *
 * onnxruntime-node copies every fetched output into a new JS buffer, so fetching `present.*`
 * (the whole cache, every step) costs time proportional to the context, and cropping a
 * `[batch, heads, length, head_dim]` cache means copying it. The rewritten graph instead
 *  - takes each past as `[batch, length, heads, head_dim]` (sequence-major) and transposes it
 *    inside the graph, so the runtime can keep one growing buffer per tensor whose first
 *    `length` rows are always the cache: appending writes only the new rows, cropping is O(1);
 *  - also outputs just the new positions' keys and values, sequence-major, so a step fetches
 *    `logits` and those instead of the whole `present.*`.
 * Attention, weights and every other node are untouched: the logits are the same.
 * @module
 */
import { int64Constant as int64ConstantOf, intsAttribute, onnxNode, ONNX_FLOAT, readValueInfo, valueInfo, type Declared } from './onnxProto.js';
import { fields, stringField, WireWriter } from './protobufWire.js';

/** Suffix of the sequence-major past inputs and of the new-row outputs. */
export const SEQ_MAJOR_SUFFIX = '.seq_major';
export const NEW_ROWS_SUFFIX = '.new_rows';

/** Names the rewritten graph uses for the cache. */
export interface IncrementalCacheNames {
  /** Sequence-major past inputs, `[key, value]` per layer. */
  pastInputs: Array<[string, string]>;
  /** Outputs holding only the new positions, sequence-major, `[key, value]` per layer. */
  newOutputs: Array<[string, string]>;
}

const PREFIX = 'lse_incremental_';
const node = (opType: string, inputs: string[], outputs: string[], attributes: WireWriter[] = []) => onnxNode(PREFIX, opType, inputs, outputs, attributes);
const int64Constant = (output: string, values: bigint[]) => int64ConstantOf(PREFIX, output, values);

const PAST_RE = /^past_key_values\.(\d+)\.(key|value)$/;

/** Whether any initializer of the model keeps its data in an external file. */
export function usesExternalData(model: Uint8Array): boolean {
  const graphField = fields(model).find((f) => f.field === 7 && f.wireType === 2);
  if (!graphField) return false;
  return fields(model, graphField.payloadStart, graphField.end).some((f) => f.field === 5 && f.wireType === 2 && fields(model, f.payloadStart, f.end).some((t) => t.field === 13));
}

/**
 * Returns the rewritten model and the names it uses, or null when the rewrite does not apply:
 * no `past_key_values.*` inputs with matching `present.*` outputs, or a ModelProto without an
 * inline graph. External-data initializers are kept as they are: the caller loads the rewritten
 * bytes where their relative locations resolve (see openSession.ts).
 */
export function rewriteForIncrementalCache(model: Uint8Array): { bytes: Uint8Array; names: IncrementalCacheNames } | null {
  const top = fields(model);
  const graphField = top.find((f) => f.field === 7 && f.wireType === 2);
  if (!graphField) return null;
  const graphFields = fields(model, graphField.payloadStart, graphField.end);
  const inputs = new Map<string, { declared: Declared; field: (typeof graphFields)[number] }>();
  const outputs = new Set<string>();
  for (const f of graphFields) {
    if (f.wireType !== 2) continue;
    if (f.field === 11) {
      const declared = readValueInfo(model, f.payloadStart, f.end);
      inputs.set(declared.name, { declared, field: f });
    } else if (f.field === 12) outputs.add(stringField(model, f.payloadStart, f.end, 1) ?? '');
  }
  const layers: Array<[Declared, Declared]> = [];
  for (const name of inputs.keys()) {
    const m = PAST_RE.exec(name);
    if (m && m[2] === 'key') {
      const layer = Number(m[1]);
      const value = inputs.get(`past_key_values.${layer}.value`);
      if (!value || !outputs.has(`present.${layer}.key`) || !outputs.has(`present.${layer}.value`)) return null;
      layers[layer] = [inputs.get(name)!.declared, value.declared];
    }
  }
  if (layers.length === 0 || Array.from(layers).some((l) => !l) || layers.flat().some((d) => d.dims.length !== 4)) return null;
  const graph = {
    pastNames: layers.map(([k, v]) => [k.name, v.name] as [string, string]),
    presentNames: layers.map((_, i) => [`present.${i}.key`, `present.${i}.value`] as [string, string]),
  };
  const elem = layers[0]![0].elemType || ONNX_FLOAT;
  const [, heads, , headDim] = layers[0]![0].dims as [unknown, number | string, unknown, number | string];
  const pastNames = new Set(graph.pastNames.flat());
  const names: IncrementalCacheNames = {
    pastInputs: graph.pastNames.map(([k, v]) => [`${k}${SEQ_MAJOR_SUFFIX}`, `${v}${SEQ_MAJOR_SUFFIX}`]),
    newOutputs: graph.presentNames.map(([k, v]) => [`${k}${NEW_ROWS_SUFFIX}`, `${v}${NEW_ROWS_SUFFIX}`]),
  };

  // Past inputs: sequence-major under new names, transposed back to the names the graph uses.
  const head = new WireWriter();
  graph.pastNames.forEach(([k, v], layer) => {
    const [ks, vs] = names.pastInputs[layer]!;
    head.bytes(1, node('Transpose', [ks], [k], [intsAttribute('perm', [0, 2, 1, 3])]));
    head.bytes(1, node('Transpose', [vs], [v], [intsAttribute('perm', [0, 2, 1, 3])]));
  });
  // New rows: present[:, :, past_length:, :], sequence-major.
  const tail = new WireWriter();
  const pastLength = `${PREFIX}past_length`;
  const index1 = `${PREFIX}index_1`;
  const axis2 = `${PREFIX}axis_2`;
  const end = `${PREFIX}end`;
  tail.bytes(1, int64Constant(index1, [1n]));
  tail.bytes(1, int64Constant(axis2, [2n]));
  tail.bytes(1, int64Constant(end, [9223372036854775807n]));
  tail.bytes(1, node('Shape', [names.pastInputs[0]![0]], [`${PREFIX}past_shape`]));
  tail.bytes(1, node('Gather', [`${PREFIX}past_shape`, index1], [pastLength], [new WireWriter().bytes(1, 'axis').varint(3, 0).varint(20, 2)]));
  graph.presentNames.forEach((pair, layer) => {
    pair.forEach((present, j) => {
      const out = names.newOutputs[layer]![j]!;
      const sliced = `${PREFIX}slice_${out}`;
      tail.bytes(1, node('Slice', [present, pastLength, end, axis2], [sliced]));
      tail.bytes(1, node('Transpose', [sliced], [out], [intsAttribute('perm', [0, 2, 1, 3])]));
      tail.bytes(12, valueInfo(out, elem, ['batch_size', `${PREFIX}new_length`, heads, headDim]));
    });
  });

  // The graph's own fields, with the past inputs replaced.
  const body = new WireWriter().raw(head.finish());
  let replaced = 0;
  for (const f of graphFields) {
    const name = f.field === 11 && f.wireType === 2 ? stringField(model, f.payloadStart, f.end, 1) : null;
    if (name !== null && pastNames.has(name)) {
      const layer = graph.pastNames.findIndex((p) => p.includes(name));
      const seqName = names.pastInputs[layer]![graph.pastNames[layer]![0] === name ? 0 : 1]!;
      body.bytes(11, valueInfo(seqName, elem, ['batch_size', `${PREFIX}past_length`, heads, headDim]));
      replaced++;
    } else body.raw(model.subarray(f.start, f.end));
  }
  if (replaced !== pastNames.size) return null;
  body.raw(tail.finish());

  const out = new WireWriter();
  for (const f of top) {
    if (f === graphField) out.bytes(7, body);
    else out.raw(model.subarray(f.start, f.end));
  }
  return { bytes: out.finish(), names };
}
