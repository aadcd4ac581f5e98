/**
 * In-context tokenization of a growing response: how a model's tokenizer splits the response
 * text when it follows the prompt, re-encoded incrementally with a bounded look-behind so the
 * per-cycle cost does not grow with the response length.
 * @module
 */
import { fromUtf8, utf8 } from './bytes.js';
import type { TextTokenizer } from './tokenizer.js';

/** Token ids of a text with the byte offset where each token ends. */
export interface TokenSpans {
  /** Token ids. */
  ids: number[];
  /** End byte offset of each token, relative to the start of the encoded text. */
  ends: number[];
  /**
   * Bytes of the text up to which `ends` are exact; less than its length only when the
   * tokenizer cannot reproduce the text (the offsets after this point are approximate).
   */
  exactBytes: number;
}

/** Where a text starts: after plain context text, possibly preceded by a special token. */
export interface EncodingContext {
  /** Plain text right before (no special tokens), already tokenized as part of the sequence. */
  text: string;
  /** A special token string immediately before `text` (e.g. `<|im_start|>assistant`'s marker), if any. */
  special: string | null;
}

/**
 * Encodes `text` as the tokenizer would split it right after `context`, and returns only the
 * tokens of `text`. Returns null when no token boundary falls exactly where `text` begins (the
 * context and the text merge into one token).
 */
export function encodeContinuation(tok: TextTokenizer, context: EncodingContext, text: string): TokenSpans | null {
  if (text.length === 0) return { ids: [], ends: [], exactBytes: 0 };
  const special = context.special;
  // Special tokens are honoured only for the context's own marker, never inside the text.
  const useSpecial = special !== null && !tok.containsSpecialString(context.text + text);
  const full = (useSpecial ? special : '') + context.text + text;
  const fullBytes = utf8(full);
  const ids = tok.encode(full, { allowSpecialTokens: useSpecial });
  const exact = { upTo: fullBytes.length };
  const ends = tok.tokenEnds(ids, full, fullBytes, exact);
  const boundary = fullBytes.length - utf8(text).length;
  // Where the context itself does not round-trip, nothing about the text's offsets is known.
  if (exact.upTo < boundary) return null;
  // Tokens ending at or before the boundary belong to the context; one of them must end exactly there.
  let first = 0;
  if (boundary > 0) {
    while (first < ids.length && ends[first]! <= boundary) first++;
    if (first === 0 || ends[first - 1] !== boundary) return null;
  }
  const out: TokenSpans = { ids: [], ends: [], exactBytes: exact.upTo - boundary };
  for (let i = first; i < ids.length; i++) {
    out.ids.push(ids[i]!);
    out.ends.push(ends[i]! - boundary);
  }
  return out;
}

/**
 * A whole response's tokenization after the prompt: {@link encodeContinuation} after the
 * prompt's context, or on its own where the context does not round-trip (a special token whose
 * prefix space the tokenizer adds, say) — the same tokenization the verifiers keep.
 */
export function encodeResponse(tok: TextTokenizer, promptContext: EncodingContext, text: string): TokenSpans {
  return encodeContinuation(tok, promptContext, text) ?? encodeContinuation(tok, { text: '', special: null }, text)!;
}

/** How far back (in tokens) re-encoding starts before the first changed byte. */
const LOOK_BEHIND = 3;
/** Tokens of already-encoded text given as context before the re-encoded part. */
const CONTEXT_TOKENS = 3;

/**
 * Length of the longest prefix of `bytes` that is complete, valid UTF-8, scanning from
 * `from` (a position known to start a character, with everything before it valid).
 */
export function validUtf8Length(bytes: Uint8Array, from = 0): number {
  let i = from;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const need = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (need === 0 || i + need > bytes.length) return i;
    for (let k = 1; k < need; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return i;
    // Reject overlong and surrogate encodings the way TextDecoder does.
    if (need === 3 && ((b === 0xe0 && bytes[i + 1]! < 0xa0) || (b === 0xed && bytes[i + 1]! >= 0xa0))) return i;
    if (need === 4 && ((b === 0xf0 && bytes[i + 1]! < 0x90) || (b === 0xf4 && bytes[i + 1]! >= 0x90))) return i;
    i += need;
  }
  return i;
}

/**
 * One model's tokenization of the response text, kept up to date as the text changes at its
 * end. Each update re-encodes only a window around the change (bounded look-behind), so the
 * cost per update does not grow with the response length.
 *
 * Only the valid UTF-8 prefix of the response is tokenized: bytes after an incomplete or
 * invalid sequence (a drafter that emitted half a character) have no boundaries here.
 */
export class ResponseTokenization {
  /** Token ids of the response. */
  ids: number[] = [];
  /** End byte offset of each token in the response. */
  ends: number[] = [];
  /** Bytes of the response that are tokenized (its valid UTF-8 prefix). */
  private valid = 0;
  /** Bytes up to which {@link ends} are exact (less than `valid` only for text the tokenizer cannot reproduce). */
  private exact = 0;
  /** The text of the last update (never mutated by callers). */
  private last: Uint8Array = new Uint8Array(0);
  /** Number of updates that had to re-encode the whole response. */
  fullReencodes = 0;

  constructor(
    private readonly tok: TextTokenizer,
    /** Context the response follows: the plain tail of the prompt and the special token before it. */
    private readonly promptContext: EncodingContext,
  ) {}

  /** Bytes of the response covered by {@link ids}. */
  get coveredBytes(): number {
    return this.valid;
  }

  /**
   * Updates the tokenization to `bytes` (the whole response). The caller guarantees that the
   * first `knownEqual` bytes are the same as in the previous update; how far the texts really
   * agree is measured from there (so the cost is the size of the change, not of the text).
   * `full` re-encodes everything (debug). Returns the index of the first token that may
   * differ from before.
   */
  update(bytes: Uint8Array, knownEqual: number, full = false): number {
    const last = this.last;
    let unchangedPrefix = Math.min(knownEqual, last.length, bytes.length);
    while (unchangedPrefix < last.length && unchangedPrefix < bytes.length && last[unchangedPrefix] === bytes[unchangedPrefix]) unchangedPrefix++;
    this.last = bytes;
    let from = Math.min(this.valid, unchangedPrefix);
    while (from > 0 && (bytes[from]! & 0xc0) === 0x80) from--;
    const valid = validUtf8Length(bytes, from);
    const text = bytes.subarray(0, valid);
    this.valid = valid;
    if (full || this.ids.length === 0) return this.reencodeAll(text);
    // First old token that ends after the unchanged prefix; re-encode from a few tokens before it.
    const first = firstEndAfter(this.ends, unchangedPrefix);
    for (let widen = 1; widen <= 8; widen *= 2) {
      // Re-encoding starts and its context begin on character boundaries (byte-fallback and
      // byte-level tokens can end inside a character).
      const anchor = this.charAlignedIndex(first - LOOK_BEHIND * widen, text);
      if (anchor <= 0) break;
      const ctxStart = Math.max(0, this.charAlignedIndex(anchor - CONTEXT_TOKENS * widen, text));
      const ctxByte = ctxStart > 0 ? this.ends[ctxStart - 1]! : 0;
      const anchorByte = this.ends[anchor - 1]!;
      if (anchorByte > valid || anchorByte > this.exact) continue;
      const context: EncodingContext =
        ctxStart === 0
          ? { text: this.promptContext.text + fromUtf8(text.subarray(0, anchorByte)), special: this.promptContext.special }
          : { text: fromUtf8(text.subarray(ctxByte, anchorByte)), special: null };
      const tail = encodeContinuation(this.tok, context, fromUtf8(text.subarray(anchorByte)));
      if (!tail) continue;
      this.ids.length = anchor;
      this.ends.length = anchor;
      for (let i = 0; i < tail.ids.length; i++) {
        this.ids.push(tail.ids[i]!);
        this.ends.push(anchorByte + tail.ends[i]!);
      }
      this.exact = anchorByte + tail.exactBytes;
      return anchor;
    }
    this.fullReencodes++;
    return this.reencodeAll(text);
  }

  /**
   * The largest token index <= `index` where re-encoding may start (0 if none): the token starts
   * on a character boundary of `text` and is not a zero-width piece of a normalized cluster
   * (those share their end with the token before).
   */
  private charAlignedIndex(index: number, text: Uint8Array): number {
    let i = Math.min(index, this.ids.length);
    const ends = this.ends;
    while (i > 0 && (!isCharStart(text, ends[i - 1]!) || (i < ends.length && ends[i] === ends[i - 1]))) i--;
    return Math.max(0, i);
  }

  private reencodeAll(text: Uint8Array): number {
    const str = fromUtf8(text);
    const spans = encodeResponse(this.tok, this.promptContext, str);
    this.ids = spans.ids;
    this.ends = spans.ends;
    this.exact = spans.exactBytes;
    return 0;
  }

  /**
   * Index of the token that starts at byte `offset` (`ids.length` when `offset` is the end of
   * the covered text), or -1 when `offset` falls inside a token or beyond the covered text.
   */
  tokenStartingAt(offset: number): number {
    if (offset > this.valid || offset > this.exact) return -1;
    if (offset === 0) return 0;
    let lo = 0;
    let hi = this.ends.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = this.ends[mid]!;
      if (e === offset) {
        // Zero-width tokens can share an end; the token starting here follows the last of them.
        let k = mid;
        while (k + 1 < this.ends.length && this.ends[k + 1] === offset) k++;
        return k + 1;
      }
      if (e < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** Index of the first entry of the sorted `ends` that is greater than `offset` (binary search). */
function firstEndAfter(ends: readonly number[], offset: number): number {
  let lo = 0;
  let hi = ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ends[mid]! <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function isCharStart(bytes: Uint8Array, offset: number): boolean {
  return offset <= 0 || offset >= bytes.length || (bytes[offset]! & 0xc0) !== 0x80;
}
