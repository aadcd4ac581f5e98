/**
 * The committed response as bytes: stop strings found across chunk boundaries, and text
 * released for streaming only when it is whole characters and cannot be part of a stop string.
 * @module
 */
import { completeUtf8Prefix, fromUtf8, utf8 } from '../text/bytes.js';

/** Growable byte buffer with amortized O(1) appends. */
export class ByteBuffer {
  private buf = new Uint8Array(256);
  length = 0;

  append(bytes: Uint8Array): void {
    if (this.length + bytes.length > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + bytes.length));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }

  /** A view of the bytes (valid until the next append). */
  view(from = 0, to = this.length): Uint8Array {
    return this.buf.subarray(from, to);
  }

  /** A copy of `view(from, to)` followed by `extra`. */
  with(extra: readonly Uint8Array[]): Uint8Array {
    let total = this.length;
    for (const e of extra) total += e.length;
    const out = new Uint8Array(total);
    out.set(this.view());
    let at = this.length;
    for (const e of extra) {
      out.set(e, at);
      at += e.length;
    }
    return out;
  }
}

/**
 * The user-visible response: committed bytes after an optional hidden prefix (a
 * sentencepiece drafter's leading dummy space), stop-string detection and streaming release.
 */
export class ResponseText {
  private readonly stops: Uint8Array[];
  private readonly longestStop: number;
  /** Visible bytes already handed out by {@link release}. */
  private released = 0;
  /** Visible bytes already searched for stop strings (searches resume a stop-length before). */
  private searched = 0;
  /** Byte offset (visible) where a stop string starts, once found. */
  stopAt: number | null = null;

  constructor(
    private readonly bytes: ByteBuffer,
    stops: readonly string[],
    /** Bytes at the start of the response that are not shown (0 or 1). */
    private hidden = 0,
  ) {
    this.stops = stops.map((s) => utf8(s));
    this.longestStop = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Decides the hidden prefix once the first bytes are known. */
  setHidden(hidden: number): void {
    this.hidden = hidden;
  }

  private get visibleLength(): number {
    return Math.max(0, this.bytes.length - this.hidden);
  }

  private visible(from: number, to: number): Uint8Array {
    return this.bytes.view(this.hidden + from, this.hidden + to);
  }

  /** Searches newly committed bytes for stop strings; returns true when one was found. */
  checkStops(): boolean {
    if (this.stopAt !== null) return true;
    if (this.stops.length === 0) return false;
    const end = this.visibleLength;
    const from = Math.max(0, this.searched - this.longestStop + 1);
    const hay = this.visible(from, end);
    let best: number | null = null;
    for (const stop of this.stops) {
      const at = indexOfBytes(hay, stop);
      if (at >= 0 && (best === null || from + at < best)) best = from + at;
    }
    this.searched = end;
    this.stopAt = best;
    return best !== null;
  }

  /**
   * New text safe to show: whole UTF-8 characters that cannot turn out to be the start of a
   * stop string. Call {@link finish} at the end to flush the rest.
   */
  release(): string {
    const limit = this.stopAt ?? this.visibleLength - this.pendingStopPrefix();
    const upto = completeUtf8Prefix(this.visible(0, Math.max(limit, this.released)), Math.max(limit, this.released));
    if (upto <= this.released) return '';
    const text = fromUtf8(this.visible(this.released, upto));
    this.released = upto;
    return text;
  }

  /** Flushes what is left (cut before a stop string, if any) and returns it. */
  finish(): string {
    const end = this.stopAt ?? this.visibleLength;
    if (end <= this.released) return '';
    const text = fromUtf8(this.visible(this.released, end));
    this.released = end;
    return text;
  }

  /** The final text (cut before a stop string). */
  text(): string {
    return fromUtf8(this.visible(0, this.stopAt ?? this.visibleLength));
  }

  /** Length of the longest tail of the visible bytes that is a proper prefix of a stop string. */
  private pendingStopPrefix(): number {
    const end = this.visibleLength;
    let hold = 0;
    for (const stop of this.stops) {
      for (let len = Math.min(stop.length - 1, end); len > hold; len--) {
        const tail = this.visible(end - len, end);
        let match = true;
        for (let i = 0; i < len; i++) {
          if (tail[i] !== stop[i]) {
            match = false;
            break;
          }
        }
        if (match) {
          hold = len;
          break;
        }
      }
    }
    return hold;
  }
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array): number {
  if (needle.length === 0) return 0;
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}
