/**
 * Tokens as byte strings shared across vocabularies: the keys UniTE and GaC unite on.
 * A key is the token's exact bytes as a Latin-1 string (one char per byte), so `Ġthe`, `▁the`
 * and `the` with a leading space all become the same key, and a prefix test on keys is a
 * byte-prefix test. Every end-of-sequence token of every model maps to one key.
 * @module
 */
import { encodeContinuation, type EncodingContext } from '../text/continuation.js';
import { fromUtf8 } from '../text/bytes.js';
import type { TextTokenizer } from '../text/tokenizer.js';

/** The shared key of every model's end-of-sequence tokens. */
export const EOS_KEY = '\u0000<eos>';

/** Bytes → Latin-1 key. */
export function bytesKey(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** Latin-1 key → bytes. */
export function keyBytes(key: string): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

/** Human-readable text of a key (for traces). */
export function keyText(key: string): string {
  return key === EOS_KEY ? '<eos>' : fromUtf8(keyBytes(key));
}

/** A model vocabulary seen through byte keys. One per tokenizer, shared by ensembles. */
export class Vocabulary {
  private readonly keys: Array<string | undefined>;
  /** Keys looked up so far (-1: no such token). */
  private readonly byKey = new Map<string, number>();
  private readonly eos: Set<number>;
  /** Id appended when the ensemble picks end-of-sequence. */
  readonly eosId: number | null;

  private constructor(readonly tokenizer: TextTokenizer) {
    this.keys = new Array(tokenizer.vocabSize);
    this.eos = new Set(tokenizer.eosTokenIds);
    // An end id the model cannot produce (named by a config, past its logits) is never appended.
    this.eosId = tokenizer.eosTokenIds.find((id) => id < tokenizer.producibleIds) ?? null;
  }

  private static readonly cache = new WeakMap<TextTokenizer, Vocabulary>();

  /** The shared view of a tokenizer's vocabulary. */
  static of(tokenizer: TextTokenizer): Vocabulary {
    let v = Vocabulary.cache.get(tokenizer);
    if (!v) {
      v = new Vocabulary(tokenizer);
      Vocabulary.cache.set(tokenizer, v);
    }
    return v;
  }

  /** Number of ids the model can produce (special tokens above its logits width excluded). */
  get size(): number {
    return this.tokenizer.producibleIds;
  }

  /** Key of a token id. */
  key(id: number): string {
    let k = this.keys[id];
    if (k === undefined) {
      k = this.eos.has(id) ? EOS_KEY : bytesKey(this.tokenizer.tokenBytes(id));
      this.keys[id] = k;
    }
    return k;
  }

  /** True for end-of-sequence ids. */
  isEos(id: number): boolean {
    return this.eos.has(id);
  }

  /**
   * The id whose bytes are exactly `key`, or null. Prefers ordinary vocabulary entries over
   * byte-fallback and special tokens. A direct lookup in the tokenizer's own table: nothing is
   * built over the vocabulary at the first ensemble.
   */
  idOf(key: string): number | null {
    if (key === EOS_KEY) return this.eosId;
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.tokenizer.idOfBytes(keyBytes(key)) ?? -1;
      // An end-of-sequence token's bytes are not its key (EOS_KEY is).
      if (id >= 0 && this.eos.has(id)) id = -1;
      this.byKey.set(key, id);
    }
    return id < 0 ? null : id;
  }

  /** Producible ids sorted by key (end-of-sequence and keyless ids left out), built on first use; `keys[i]` is id i's sort entry. */
  private sorted: { ids: Int32Array; keys: string[] } | null = null;

  /**
   * Ids whose key starts with `prefix` (the tokens that begin with those bytes), in key order.
   * The first call sorts the vocabulary once; each later one is a binary search.
   */
  idsStartingWith(prefix: string): Int32Array {
    if (prefix === EOS_KEY) return this.eosId === null ? new Int32Array(0) : Int32Array.of(this.eosId);
    const { ids, keys } = this.sortedKeys();
    const lo = lowerBound(keys, prefix);
    // Entries are Latin-1 keys then U+0100 and two id chars: prefix + U+FFFF sorts after every extension.
    const hi = lowerBound(keys, prefix + '\uffff');
    return ids.subarray(lo, hi);
  }

  private sortedKeys(): { ids: Int32Array; keys: string[] } {
    if (this.sorted) return this.sorted;
    // Each entry is the key, a separator above every Latin-1 char, and the id in two chars: the
    // default (code-unit) sort is then byte order with ties by id, and much faster than a comparator.
    const entries: string[] = [];
    for (let id = 0; id < this.size; id++) {
      if (this.eos.has(id)) continue;
      let key: string;
      try {
        key = this.key(id);
      } catch {
        continue; // an id without bytes (a hole in the vocabulary)
      }
      if (key !== '') entries.push(key + '\u0100' + String.fromCharCode(id >>> 16, id & 0xffff));
    }
    entries.sort();
    const ids = new Int32Array(entries.length);
    entries.forEach((e, i) => (ids[i] = (e.charCodeAt(e.length - 2) << 16) | e.charCodeAt(e.length - 1)));
    this.sorted = { ids, keys: entries };
    return this.sorted;
  }

  /**
   * How this model would write `key` right after `context`: its in-context tokenization, or a
   * direct vocabulary match when the bytes are not text on their own. Empty when impossible.
   */
  tokenize(key: string, context: string | EncodingContext): number[] {
    if (key === EOS_KEY) return this.eosId === null ? [] : [this.eosId];
    const bytes = keyBytes(key);
    const text = fromUtf8(bytes);
    const roundTrips = bytesKey(new TextEncoder().encode(text)) === key;
    if (!roundTrips) {
      const direct = this.idOf(key);
      return direct === null ? [] : [direct];
    }
    const spans = encodeContinuation(this.tokenizer, typeof context === 'string' ? { text: context, special: null } : context, text) ?? encodeContinuation(this.tokenizer, { text: '', special: null }, text);
    return spans?.ids ?? [];
  }

  /**
   * The model's first sub-token for `key` (UniTE fill-in): the exact token if the vocabulary
   * has it, else the first non-space token of its in-context tokenization. Null if none.
   */
  firstSubToken(key: string, context: string): number | null {
    const direct = this.idOf(key);
    if (direct !== null) return direct;
    const ids = this.tokenize(key, context);
    const skip = leadingSpaceTokens(this, ids, key);
    return ids[skip] ?? null;
  }

  /**
   * Ids to append to a drafter for a winning key: UniTE appends the first sub-token (after any
   * bare-space tokens), GaC the full tokenization.
   */
  appendIds(key: string, context: string, full: boolean): number[] {
    const direct = this.idOf(key);
    if (direct !== null) return [direct];
    const ids = this.tokenize(key, context);
    if (full || ids.length === 0) return ids;
    return ids.slice(0, leadingSpaceTokens(this, ids, key) + 1);
  }
}

/** First index of `sorted` whose entry is not below `key`. */
function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Number of leading tokens that are a bare space (when the key itself is more than a space). */
function leadingSpaceTokens(vocab: Vocabulary, ids: number[], key: string): number {
  if (isBareSpace(key)) return 0;
  let k = 0;
  while (k < ids.length - 1 && isBareSpace(vocab.key(ids[k]!))) k++;
  return k;
}

/** True for keys made only of spaces (`' '`, `'  '`). */
export function isBareSpace(key: string): boolean {
  return /^ +$/.test(key);
}
