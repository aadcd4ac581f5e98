/**
 * The few ONNX protobuf messages the load-time graph rewrites write (nodes, constants,
 * attributes, value infos), over the wire-level writer of protobufWire.ts.
 * @module
 */
import { WireWriter } from './protobufWire.js';

/** TensorProto element types used by the rewrites. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

/** A NodeProto named `${prefix}${opType}_${first output}` (names the rewrite's nodes apart from the model's). */
export function onnxNode(prefix: string, opType: string, inputs: readonly string[], outputs: readonly string[], attributes: readonly WireWriter[] = []): WireWriter {
  const n = new WireWriter();
  for (const i of inputs) n.bytes(1, i);
  for (const o of outputs) n.bytes(2, o);
  n.bytes(3, `${prefix}${opType}_${outputs[0]}`).bytes(4, opType);
  for (const a of attributes) n.bytes(5, a);
  return n;
}

/** A Constant node producing a 1-D int64 tensor. */
export function int64Constant(prefix: string, output: string, values: readonly bigint[]): WireWriter {
  const raw = BigInt64Array.from(values);
  const tensor = new WireWriter().varint(1, values.length).varint(2, ONNX_INT64).bytes(9, new Uint8Array(raw.buffer));
  return onnxNode(prefix, 'Constant', [], [output], [new WireWriter().bytes(1, 'value').bytes(5, tensor).varint(20, 4)]); // TENSOR
}

/** An INTS attribute. */
export function intsAttribute(name: string, values: readonly number[]): WireWriter {
  const a = new WireWriter().bytes(1, name);
  for (const v of values) a.varint(8, v);
  return a.varint(20, 7); // INTS
}

/** A ValueInfoProto of a tensor: name, element type, dims (numbers, or names of symbolic dims). */
export function valueInfo(name: string, elemType: number, dims: ReadonlyArray<number | string>): WireWriter {
  const shape = new WireWriter();
  for (const d of dims) shape.bytes(1, typeof d === 'number' ? new WireWriter().varint(1, d) : new WireWriter().bytes(2, d));
  const tensor = new WireWriter().varint(1, elemType).bytes(2, shape);
  return new WireWriter().bytes(1, name).bytes(2, new WireWriter().bytes(1, tensor));
}
