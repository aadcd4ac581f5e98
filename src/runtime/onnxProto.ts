/**
 * The few ONNX protobuf messages the load-time graph rewrites write (nodes, constants,
 * attributes, value infos), over the wire-level writer of protobufWire.ts.
 * @module
 */
import { fields, WireWriter } from './protobufWire.js';

/** TensorProto element types used by the rewrites. */
export const ONNX_FLOAT = 1;
export const ONNX_FLOAT16 = 10;
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

/** A graph input or output as declared: name, element type and dims (numbers or names). */
export interface Declared {
  name: string;
  elemType: number;
  dims: Array<number | string>;
}

/** Reads the ValueInfoProto in `buf[from, to)`. */
export function readValueInfo(buf: Uint8Array, from: number, to: number): Declared {
  let name = '';
  let elemType = 0;
  const dims: Array<number | string> = [];
  for (const f of fields(buf, from, to)) {
    if (f.field === 1 && f.wireType === 2) name = new TextDecoder().decode(buf.subarray(f.payloadStart, f.end));
    if (f.field !== 2 || f.wireType !== 2) continue;
    const tensor = fields(buf, f.payloadStart, f.end).find((t) => t.field === 1 && t.wireType === 2);
    if (!tensor) continue;
    for (const t of fields(buf, tensor.payloadStart, tensor.end)) {
      if (t.field === 1 && t.wireType === 0) elemType = varintAt(buf, t);
      if (t.field !== 2 || t.wireType !== 2) continue;
      for (const d of fields(buf, t.payloadStart, t.end)) {
        if (d.field !== 1 || d.wireType !== 2) continue;
        const inner = fields(buf, d.payloadStart, d.end)[0];
        if (!inner) dims.push('?');
        else if (inner.field === 1 && inner.wireType === 0) dims.push(varintAt(buf, inner));
        else dims.push(new TextDecoder().decode(buf.subarray(inner.payloadStart, inner.end)));
      }
    }
  }
  return { name, elemType, dims };
}

/** The value of a varint field (`f` spans the key and the value). */
export function varintAt(buf: Uint8Array, f: { start: number; end: number }): number {
  let at = f.start;
  while (buf[at]! >= 0x80) at++; // skip the key
  let value = 0;
  let shift = 0;
  for (at++; at < f.end; at++) {
    value += (buf[at]! & 0x7f) * 2 ** shift;
    shift += 7;
  }
  return value;
}

/** Every node's op type in `model` (a ModelProto), subgraphs (If / Loop bodies) included. */
export function opTypes(model: Uint8Array): Set<string> {
  const ops = new Set<string>();
  const visit = (from: number, to: number) => {
    for (const f of fields(model, from, to)) {
      if (f.field !== 1 || f.wireType !== 2) continue;
      for (const n of fields(model, f.payloadStart, f.end)) {
        if (n.field === 4 && n.wireType === 2) ops.add(new TextDecoder().decode(model.subarray(n.payloadStart, n.end)));
        else if (n.field === 5 && n.wireType === 2) {
          const sub = fields(model, n.payloadStart, n.end).find((x) => x.field === 6 && x.wireType === 2);
          if (sub) visit(sub.payloadStart, sub.end);
        }
      }
    }
  };
  const graph = fields(model).find((f) => f.field === 7 && f.wireType === 2);
  if (graph) visit(graph.payloadStart, graph.end);
  return ops;
}
