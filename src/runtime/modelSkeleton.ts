/**
 * A model's skeleton: its ONNX protobuf with every inline weight (an initializer's `raw_data`)
 * replaced by an external-data reference to those same bytes inside the original file. Read
 * from the file by ranges — the weights are never read into memory — so the load-time graph
 * rewrites work on a few kilobytes, copy no weight byte, and onnxruntime reads the weights
 * straight from the original file (through a hard link beside the rewritten graph; it accepts
 * any offset). Initializers already stored as external data are kept as they are.
 * @module
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { WireWriter } from './protobufWire.js';

/** Inline tensors smaller than this stay inline (not worth an external-data entry). */
const MIN_EXTERNAL_BYTES = 1024;

interface Field {
  field: number;
  wireType: number;
  start: number;
  payloadStart: number;
  end: number;
}

/** Bytes of a file read on demand, through a small window. */
class FileBytes {
  private readonly window = Buffer.alloc(64 * 1024);
  private windowStart = 0;
  private windowEnd = 0;
  readonly size: number;

  constructor(private readonly fd: number) {
    this.size = fstatSync(fd).size;
  }

  byte(at: number): number {
    if (at < this.windowStart || at >= this.windowEnd) {
      const n = readSync(this.fd, this.window, 0, this.window.length, at);
      if (n <= 0) throw new RangeError('unexpected end of the file');
      this.windowStart = at;
      this.windowEnd = at + n;
    }
    return this.window[at - this.windowStart]!;
  }

  bytes(start: number, end: number): Uint8Array {
    const out = Buffer.alloc(end - start);
    let done = 0;
    while (done < out.length) {
      const n = readSync(this.fd, out, done, out.length - done, start + done);
      if (n <= 0) throw new RangeError('unexpected end of the file');
      done += n;
    }
    return out;
  }

  /** A varint at `at`: its value (exact below 2^53) and where it ends. */
  varint(at: number): { value: number; next: number } {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte(at + i);
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return { value, next: at + i + 1 };
    }
    throw new RangeError('varint too long');
  }

  /** The fields of the message in `[from, to)`. */
  fields(from: number, to: number): Field[] {
    const out: Field[] = [];
    let at = from;
    while (at < to) {
      const start = at;
      const tag = this.varint(at);
      at = tag.next;
      const wireType = tag.value % 8;
      const field = Math.floor(tag.value / 8);
      let payloadStart = at;
      if (wireType === 0) at = this.varint(at).next;
      else if (wireType === 1) at += 8;
      else if (wireType === 5) at += 4;
      else if (wireType === 2) {
        const length = this.varint(at);
        payloadStart = length.next;
        at = length.next + length.value;
      } else throw new RangeError(`wire type ${wireType} is not read here`);
      if (at > to) throw new RangeError('a field runs past its message');
      out.push({ field, wireType, start, payloadStart, end: at });
    }
    return out;
  }
}

/**
 * The skeleton of the ONNX file at `path` whose moved weights refer to `weightsName` (a file
 * name in the folder the skeleton will be loaded from, holding the original file's bytes), and
 * how many initializers were moved.
 */
export function readSkeleton(path: string, weightsName: string): { bytes: Uint8Array; moved: number } {
  const fd = openSync(path, 'r');
  try {
    const file = new FileBytes(fd);
    let moved = 0;
    const entry = (key: string, value: string) => new WireWriter().bytes(1, key).bytes(2, value);
    const tensor = (t: Field): Uint8Array | WireWriter => {
      const parts = file.fields(t.payloadStart, t.end);
      const raw = parts.find((f) => f.field === 9 && f.wireType === 2);
      const external = parts.some((f) => f.field === 13 || f.field === 14);
      if (!raw || external || raw.end - raw.payloadStart < MIN_EXTERNAL_BYTES) return file.bytes(t.payloadStart, t.end);
      const out = new WireWriter();
      for (const f of parts) if (f !== raw) out.raw(file.bytes(f.start, f.end));
      out.bytes(13, entry('location', weightsName)).bytes(13, entry('offset', String(raw.payloadStart))).bytes(13, entry('length', String(raw.end - raw.payloadStart)));
      moved++;
      return out.varint(14, 1); // data_location: EXTERNAL
    };
    const model = new WireWriter();
    for (const f of file.fields(0, file.size)) {
      if (f.field !== 7 || f.wireType !== 2) {
        model.raw(file.bytes(f.start, f.end));
        continue;
      }
      const graph = new WireWriter();
      for (const g of file.fields(f.payloadStart, f.end)) {
        if (g.field === 5 && g.wireType === 2) graph.bytes(5, tensor(g));
        else graph.raw(file.bytes(g.start, g.end));
      }
      model.bytes(7, graph);
    }
    return { bytes: model.finish(), moved };
  } finally {
    closeSync(fd);
  }
}
