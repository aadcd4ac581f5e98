/**
 * A member's tokens as the byte strings a text constraint judges, with a byte trie over them:
 * a grammar walks the trie once per state instead of every token's bytes, sharing prefixes.
 * Built once per tokenizer (and once more for the response's first token, whose dummy-prefix
 * space is not part of the response), on first use by a constraint.
 * @module
 */
import type { TextTokenizer } from '../text/tokenizer.js';

/** Tokens as byte strings, and their trie. Ids that can never be written (special, beyond the logits) have no bytes. */
export class TokenTable {
  /** Number of ids (the tokenizer's producible ids). */
  readonly size: number;
  private readonly bytes: Uint8Array[];
  private trie: TokenTrie | null = null;
  private split: { plain: Uint8Array; rest: TokenTrie } | null = null;
  private readonly byteSplits = new Map<number, { plain: Uint8Array; rest: TokenTrie }>();

  /** Byte length of each token (capped at 65535). */
  readonly lengths: Uint16Array;

  private constructor(bytes: Uint8Array[]) {
    this.size = bytes.length;
    this.bytes = bytes;
    this.lengths = Uint16Array.from(bytes, (b) => Math.min(65535, b.length));
  }

  private static readonly tables = new WeakMap<TextTokenizer, { plain?: TokenTable; first?: TokenTable }>();

  /** The table of `tok`'s tokens; `firstToken`: with a leading space removed (a dummy prefix's). */
  static of(tok: TextTokenizer, firstToken = false): TokenTable {
    let entry = TokenTable.tables.get(tok);
    if (!entry) TokenTable.tables.set(tok, (entry = {}));
    const slot = firstToken ? 'first' : 'plain';
    let table = entry[slot];
    if (!table) {
      const bytes: Uint8Array[] = [];
      const empty = new Uint8Array(0);
      for (let id = 0; id < tok.producibleIds; id++) {
        if (tok.isSpecial(id)) {
          bytes.push(empty);
          continue;
        }
        const b = tok.tokenBytes(id);
        bytes.push(firstToken && b[0] === 0x20 ? b.subarray(1) : b);
      }
      table = entry[slot] = new TokenTable(bytes);
    }
    return table;
  }

  /** The bytes of token `id` (empty: never allowed). */
  bytesOf(id: number): Uint8Array {
    return this.bytes[id] ?? new Uint8Array(0);
  }

  /** The trie over every token's bytes. */
  get tokenTrie(): TokenTrie {
    return (this.trie ??= new TokenTrie(this.bytes));
  }

  /**
   * The tokens without byte `b` as a mask, and a trie of the others: in free text waiting for a
   * marker that starts with `b`, the former leave the state as it was.
   */
  withoutByte(b: number): { plain: Uint8Array; rest: TokenTrie } {
    let split = this.byteSplits.get(b);
    if (!split) {
      const plain = new Uint8Array(this.size);
      const empty = new Uint8Array(0);
      const others = this.bytes.map((t, id) => {
        const isPlain = t.length > 0 && !t.includes(b);
        plain[id] = isPlain ? 1 : 0;
        return isPlain ? empty : t;
      });
      split = { plain, rest: new TokenTrie(others) };
      this.byteSplits.set(b, split);
    }
    return split;
  }

  /**
   * The tokens that are plain JSON string content (printable ASCII but `"` and `\`, and whole
   * UTF-8 characters) as a mask, and a trie of all the others: inside a string of unbounded
   * length every plain token is allowed and leaves the state as it was, so only the rest needs
   * a walk.
   */
  get stringSplit(): { plain: Uint8Array; rest: TokenTrie } {
    if (!this.split) {
      const plain = new Uint8Array(this.size);
      const others: Uint8Array[] = [];
      const empty = new Uint8Array(0);
      this.bytes.forEach((b, id) => {
        const isPlain = b.length > 0 && plainString(b);
        plain[id] = isPlain ? 1 : 0;
        others.push(isPlain ? empty : b);
      });
      this.split = { plain, rest: new TokenTrie(others) };
    }
    return this.split;
  }
}

/** Whether `b` is whole characters of JSON string content that need no escape. */
function plainString(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    if (x < 0x80) {
      if (x < 0x20 || x === 0x22 || x === 0x5c || x === 0x7f) return false;
      continue;
    }
    const need = x >= 0xc2 && x <= 0xdf ? 1 : x >= 0xe0 && x <= 0xef ? 2 : x >= 0xf0 && x <= 0xf4 ? 3 : -1;
    if (need < 0 || i + need >= b.length) return false;
    for (let k = 1; k <= need; k++) if ((b[i + k]! & 0xc0) !== 0x80) return false;
    i += need;
  }
  return true;
}

/**
 * Trie nodes in flat arrays: node 0 is the root; each node's children form a linked list
 * (`firstChild`, `nextSibling`) labelled by `edge`; `tokensAt` lists the ids whose bytes end there.
 */
export class TokenTrie {
  readonly firstChild: Int32Array;
  readonly nextSibling: Int32Array;
  readonly edge: Uint8Array;
  /** Per node, the first token id ending there, or -1 (others in `moreTokens`). */
  readonly tokenAt: Int32Array;
  readonly moreTokens = new Map<number, number[]>();
  /** Depth (byte length) of each node. */
  readonly depth: Uint16Array;
  readonly nodes: number;

  constructor(tokens: readonly Uint8Array[]) {
    let capacity = 1;
    for (const t of tokens) capacity += t.length;
    const first = new Int32Array(capacity).fill(-1);
    const sibling = new Int32Array(capacity).fill(-1);
    const edge = new Uint8Array(capacity);
    const tokenAt = new Int32Array(capacity).fill(-1);
    const depth = new Uint16Array(capacity);
    let count = 1;
    tokens.forEach((bytes, id) => {
      if (bytes.length === 0) return;
      let node = 0;
      for (let i = 0; i < bytes.length; i++) {
        let child = first[node]!;
        while (child >= 0 && edge[child] !== bytes[i]) child = sibling[child]!;
        if (child < 0) {
          child = count++;
          edge[child] = bytes[i]!;
          depth[child] = Math.min(65535, i + 1);
          sibling[child] = first[node]!;
          first[node] = child;
        }
        node = child;
      }
      if (tokenAt[node]! < 0) tokenAt[node] = id;
      else {
        const more = this.moreTokens.get(node);
        if (more) more.push(id);
        else this.moreTokens.set(node, [id]);
      }
    });
    this.nodes = count;
    this.firstChild = first.slice(0, count);
    this.nextSibling = sibling.slice(0, count);
    this.edge = edge.slice(0, count);
    this.tokenAt = tokenAt.slice(0, count);
    this.depth = depth.slice(0, count);
  }

  /** Calls `visit` with every token id that ends at `node`. */
  forTokensAt(node: number, visit: (id: number) => void): void {
    const id = this.tokenAt[node]!;
    if (id < 0) return;
    visit(id);
    const more = this.moreTokens.get(node);
    if (more) for (const m of more) visit(m);
  }
}
