/**
 * Just enough of the protobuf wire format to edit an ONNX model without a schema library:
 * walk a message's fields, and write the few message types a graph rewrite adds.
 * @module
 */

/** One field of a message as it lies in the bytes. */
export interface WireField {
  /** Field number. */
  field: number;
  /** Wire type: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. */
  wireType: number;
  /** Where the field (key included) starts and ends in the buffer. */
  start: number;
  end: number;
  /** For length-delimited fields, where the payload starts. */
  payloadStart: number;
}

function readVarint(buf: Uint8Array, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (at >= buf.length) throw new RangeError('protobuf: truncated varint');
    const byte = buf[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at];
    shift += 7;
    if (shift > 63) throw new RangeError('protobuf: varint too long');
  }
}

/** The fields of the message in `buf[from, to)`, in order. */
export function fields(buf: Uint8Array, from = 0, to = buf.length): WireField[] {
  const out: WireField[] = [];
  let at = from;
  while (at < to) {
    const start = at;
    const [key, afterKey] = readVarint(buf, at);
    at = afterKey;
    const wireType = key % 8;
    const field = Math.floor(key / 8);
    let payloadStart = at;
    if (wireType === 0) at = readVarint(buf, at)[1];
    else if (wireType === 1) at += 8;
    else if (wireType === 5) at += 4;
    else if (wireType === 2) {
      const [length, afterLength] = readVarint(buf, at);
      payloadStart = afterLength;
      at = afterLength + length;
    } else throw new RangeError(`protobuf: unsupported wire type ${wireType}`);
    if (at > to) throw new RangeError('protobuf: field runs past its message');
    out.push({ field, wireType, start, end: at, payloadStart });
  }
  return out;
}

/** The UTF-8 string field `field` of the message in `buf[from, to)`, or null. */
export function stringField(buf: Uint8Array, from: number, to: number, field: number): string | null {
  const f = fields(buf, from, to).find((x) => x.field === field && x.wireType === 2);
  return f ? new TextDecoder().decode(buf.subarray(f.payloadStart, f.end)) : null;
}

/** Writes messages field by field. */
export class WireWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  private push(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.size += bytes.length;
    return this;
  }

  private varintBytes(value: number | bigint): Uint8Array {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    return Uint8Array.from(out);
  }

  /** A varint field (int32, int64, enum). */
  varint(field: number, value: number | bigint): this {
    return this.push(this.varintBytes(field * 8)).push(this.varintBytes(value));
  }

  /** A length-delimited field: bytes, a string, or a nested message. */
  bytes(field: number, payload: Uint8Array | string | WireWriter): this {
    const data = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload instanceof WireWriter ? payload.finish() : payload;
    return this.push(this.varintBytes(field * 8 + 2)).push(this.varintBytes(data.length)).push(data);
  }

  /** Raw bytes copied as they are (already encoded fields). */
  raw(data: Uint8Array): this {
    return this.push(data);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
