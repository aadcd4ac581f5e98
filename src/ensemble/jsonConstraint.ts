/**
 * JSON Schema as a text constraint: the response is a JSON text the schema accepts, written in
 * the schema's property order. The automaton (text/json/automaton.ts) runs over the committed
 * bytes incrementally; token masks come from a walk of each member's token trie per automaton
 * state, cached by state, so a long string or array costs one walk, not one per token.
 *
 * Near the end of the token budget the constraint also closes the text: a token is allowed only
 * when the shortest completion after it still fits in the tokens left (every vocabulary here
 * has single-byte tokens, so one always does), and a response cut by `maxNewTokens` is complete.
 * @module
 */
import { advance, accepts, configKey, dedupe, restBytes, startConfigs, step, type Config } from '../text/json/automaton.js';
import { compileJsonSchema, type CompiledSchema } from '../text/json/schema.js';
import { InvalidArgumentError } from '../errors.js';
import type { TextConstraint } from './constraint.js';
import type { TokenTable, TokenTrie } from './tokenTable.js';

/**
 * Bytes of token masks kept over all grammars and vocabularies (a mask is a byte per token:
 * 148 KiB at Qwen's 151,669 ids), least recently used first out.
 */
const MASK_BUDGET_BYTES = 64 * 2 ** 20;
const maskCache = new Map<string, Uint8Array>();
let maskBytes = 0;
let nextGrammarId = 0;
const tableIds = new WeakMap<TokenTable, number>();
let nextTableId = 0;

function cachedMask(key: string): Uint8Array | undefined {
  const hit = maskCache.get(key);
  if (hit) {
    // Most recently used goes last.
    maskCache.delete(key);
    maskCache.set(key, hit);
  }
  return hit;
}

function keepMask(key: string, mask: Uint8Array): void {
  maskCache.set(key, mask);
  maskBytes += mask.byteLength;
  for (const [k, m] of maskCache) {
    if (maskBytes <= MASK_BUDGET_BYTES) break;
    maskCache.delete(k);
    maskBytes -= m.byteLength;
  }
}
/** Extra tokens before the budget's end at which closing starts to be enforced. */
const CLOSING_MARGIN = 16;

/**
 * A constraint to the texts of a compiled grammar (a JSON Schema, or a reply with tool calls):
 * see {@link JsonSchemaConstraint}.
 */
export class GrammarConstraint implements TextConstraint {
  private readonly compiled: CompiledSchema;
  private readonly start: Config[];
  /** The last response seen and the configurations after each of its bytes (index i: after i bytes). */
  private known = new Uint8Array(64);
  private knownLength = 0;
  private states: Config[][];
  private readonly id = nextGrammarId++;
  /** Counters, for benchmarks and tests: trie walks done and masks served from the cache. */
  readonly counts = { walks: 0, cached: 0 };

  constructor(compiled: CompiledSchema) {
    this.compiled = compiled;
    this.start = startConfigs(compiled.root);
    this.states = [this.start];
  }

  allows(written: Uint8Array, next: Uint8Array, remainingTokens = Infinity): boolean {
    const before = this.statesAfter(written);
    const after = advance(before, next);
    if (after.length === 0) return false;
    return !Number.isFinite(remainingTokens) || fitsBudget(minRest(after), next.length, remainingTokens, minRest(before));
  }

  allowsEnd(written: Uint8Array): boolean {
    return this.statesAfter(written).some(accepts);
  }

  allowedTokens(written: Uint8Array, table: TokenTable, remainingTokens = Infinity): Uint8Array {
    const states = this.statesAfter(written);
    if (states.length === 0) return new Uint8Array(table.size);
    // Far from the budget's end the mask depends on the state alone: cached.
    const closing = remainingTokens - 1 < minRest(states) + this.compiled.maxMinBytes + CLOSING_MARGIN;
    if (closing) return this.walk(states, table, remainingTokens);
    let tableId = tableIds.get(table);
    if (tableId === undefined) tableIds.set(table, (tableId = nextTableId++));
    const key = `${this.id}/${tableId}/${states.length === 1 ? configKey(states[0]!) : states.map(configKey).sort().join('&')}`;
    const hit = cachedMask(key);
    if (hit) {
      this.counts.cached++;
      return hit;
    }
    const mask = this.walk(states, table, Infinity);
    keepMask(key, mask);
    return mask;
  }

  /** The mask by a walk of the table's trie from `states`; `remaining` finite: only tokens after which the text can still close in time. */
  private walk(states: Config[], table: TokenTable, remaining: number): Uint8Array {
    this.counts.walks++;
    let trie = table.tokenTrie;
    let mask: Uint8Array;
    const limited = Number.isFinite(remaining);
    const restBefore = limited ? minRest(states) : 0;
    const only = states.length === 1 ? states[0]! : null;
    // Inside a string of any length, or in free text before a call marker: the plain tokens are
    // allowed and change nothing (the text needs as many bytes after them as before); only the
    // others need a walk.
    const split = only?.t === 'str' && only.escape === 0 && only.pending === 0 && only.node.maxLength === Infinity ? table.stringSplit : only?.t === 'free' && only.matched === 0 ? table.withoutByte(only.node.marker[0]!) : null;
    if (split) {
      mask = split.plain.slice();
      if (limited) {
        const longest = Math.max(remaining, restBefore) - restBefore;
        const lengths = table.lengths;
        for (let id = 0; id < mask.length; id++) if (lengths[id]! > longest) mask[id] = 0;
      }
      trie = split.rest;
    } else mask = new Uint8Array(table.size);
    const nodes: number[] = [0];
    const configs: Config[][] = [states];
    // Past the point where even the shortest text fits a byte a token: the tokens on a shortest path, kept for a count below.
    const short = limited && restBefore > remaining;
    const onPath: Array<{ node: number; next: Config[] }> = [];
    const mark = (id: number) => (mask[id] = 1);
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const from = configs.pop()!;
      for (let child = trie.firstChild[node]!; child >= 0; child = trie.nextSibling[child]!) {
        const byte = trie.edge[child]!;
        let next: Config[] = [];
        for (const c of from) step(c, byte, next);
        if (next.length === 0) continue;
        if (next.length > 1) next = dedupe(next);
        if (trie.tokenAt[child]! >= 0 && (!limited || fitsBudget(minRest(next), trie.depth[child]!, remaining, restBefore))) {
          if (short) onPath.push({ node: child, next });
          else trie.forTokensAt(child, mark);
        }
        if (trie.firstChild[child]! >= 0) {
          nodes.push(child);
          configs.push(next);
        }
      }
    }
    if (short) keepClosingInTime(onPath, trie, table.tokenTrie, remaining, mark);
    return mask;
  }

  /**
   * The configurations after `written`, reusing those of the last response seen up to where the
   * two differ (the engine asks about a few neighbouring prefixes per step).
   */
  private statesAfter(written: Uint8Array): Config[] {
    const n = Math.min(written.length, this.knownLength);
    let common = 0;
    if (n > 0 && Buffer.compare(Buffer.from(written.buffer, written.byteOffset, n), Buffer.from(this.known.buffer, this.known.byteOffset, n)) === 0) common = n;
    else while (common < n && written[common] === this.known[common]) common++;
    if (common === written.length) {
      // A prefix of what is known: nothing to compute or to forget.
      return this.states[common]!;
    }
    this.states.length = common + 1;
    this.knownLength = common;
    if (this.known.length < written.length) {
      const grown = new Uint8Array(Math.max(written.length, this.known.length * 2));
      grown.set(this.known.subarray(0, common));
      this.known = grown;
    }
    let current = this.states[common]!;
    for (let i = common; i < written.length; i++) {
      current = current.length === 0 ? current : advance(current, written, i, i + 1);
      this.known[i] = written[i]!;
      this.states.push(current);
    }
    this.knownLength = written.length;
    return current;
  }
}

/**
 * A constraint to JSON that validates against a schema.
 *
 * @example
 * ```ts
 * const answer = new JsonSchemaConstraint({ type: 'object', properties: { answer: { type: 'number' } }, required: ['answer'] });
 * const { text } = await ensemble.generate('Mia has 3 apples and buys 4. How many?', { constraint: answer });
 * JSON.parse(text).answer; // a number
 * ```
 */
export class JsonSchemaConstraint extends GrammarConstraint {
  /** `schema`: a JSON Schema object (or `true` / `{}`: any JSON value). `field` names the option in errors. */
  constructor(schema: unknown, field = 'schema') {
    super(compileJsonSchema(schema, field));
  }

  /** Any JSON object (`objectOnly`, JSON mode) or any JSON value. */
  static anyJson(objectOnly = true): JsonSchemaConstraint {
    return new JsonSchemaConstraint(objectOnly ? { type: 'object' } : {}, 'responseFormat');
  }
}

/**
 * Near the budget's end: a token of `length` bytes after which the text needs `restAfter` more
 * bytes fits when those bytes, a token each, still fit in the tokens left; where even the
 * shortest text no longer fits, tokens on a shortest path (each byte a step closer) still do.
 */
function fitsBudget(restAfter: number, length: number, tokensLeft: number, restBefore: number): boolean {
  return restAfter + length <= Math.max(tokensLeft, restBefore);
}

/**
 * Of the tokens on a shortest path (`onPath`, found in `walkTrie`), those after which a greedy
 * longest-token walk still closes the text within the tokens left; where none does, those that
 * close it soonest. A budget under the shortest text's bytes then still ends in complete JSON
 * when the vocabulary's longer tokens spell it, and a model's own path stays open while it fits.
 */
function keepClosingInTime(onPath: ReadonlyArray<{ node: number; next: Config[] }>, walkTrie: TokenTrie, trie: TokenTrie, remaining: number, mark: (id: number) => void): void {
  const needs = onPath.map((p) => 1 + tokensToClose(p.next, trie));
  const fewest = Math.min(...needs);
  const limit = Math.max(remaining, fewest);
  onPath.forEach((p, i) => {
    if (needs[i]! <= limit) walkTrie.forTokensAt(p.node, mark);
  });
}

/** Tokens a walk needs to close the text from `states`, taking the longest token on a shortest path each step (Infinity: none found). */
function tokensToClose(states: Config[], trie: TokenTrie): number {
  let current = states;
  for (let count = 0; ; count++) {
    const rest = minRest(current);
    if (rest === 0) return count;
    let best: Config[] | null = null;
    let bestDepth = 0;
    const nodes: number[] = [0];
    const configs: Config[][] = [current];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const from = configs.pop()!;
      for (let child = trie.firstChild[node]!; child >= 0; child = trie.nextSibling[child]!) {
        let next: Config[] = [];
        for (const c of from) step(c, trie.edge[child]!, next);
        if (next.length === 0) continue;
        if (next.length > 1) next = dedupe(next);
        const depth = trie.depth[child]!;
        // Off a shortest path here, off it below too: a byte lowers the rest by one at most.
        if (minRest(next) + depth > rest) continue;
        if (trie.tokenAt[child]! >= 0 && depth > bestDepth) {
          best = next;
          bestDepth = depth;
        }
        if (trie.firstChild[child]! >= 0) {
          nodes.push(child);
          configs.push(next);
        }
      }
    }
    if (best === null) return Infinity;
    current = best;
  }
}

function minRest(states: readonly Config[]): number {
  let best = Infinity;
  for (const c of states) best = Math.min(best, restBytes(c));
  return best;
}

/**
 * What a response must be: `'text'` (anything), `'json'` (a JSON object), a JSON Schema, or
 * OpenAI's `{ type: 'json_object' }` / `{ type: 'json_schema', json_schema: { schema } }`.
 */
export type ResponseFormat = 'text' | 'json' | Record<string, unknown>;

/** Compiled constraints by schema text, so that repeated calls reuse their token masks. */
const compiledFormats = new Map<string, JsonSchemaConstraint>();
const FORMATS_KEPT = 32;

/** The constraint for a response format (null: `'text'`); errors name the option `responseFormat`. */
export function responseFormatConstraint(format: unknown): JsonSchemaConstraint | null {
  if (format === undefined || format === null || format === 'text') return null;
  let schema: unknown;
  if (format === 'json') schema = { type: 'object' };
  else if (typeof format === 'object' && !Array.isArray(format)) {
    const f = format as Record<string, unknown>;
    if (f.type === 'text') return null;
    if (f.type === 'json_object') schema = { type: 'object' };
    else if (f.type === 'json_schema') {
      const inner = f.json_schema as Record<string, unknown> | undefined;
      schema = inner && typeof inner === 'object' ? (inner.schema ?? {}) : undefined;
      if (schema === undefined) throw new InvalidArgumentError('responseFormat', "responseFormat: { type: 'json_schema' } needs json_schema: { schema }.");
    } else schema = f;
  } else {
    throw new InvalidArgumentError('responseFormat', `responseFormat: must be 'text', 'json', a JSON Schema object or { type: 'json_schema', json_schema: { schema } }, got ${typeof format === 'string' ? JSON.stringify(format.slice(0, 40)) : typeof format}.`);
  }
  let key: string;
  try {
    key = JSON.stringify(schema);
  } catch {
    throw new InvalidArgumentError('responseFormat', 'responseFormat: the schema must be JSON (no cycles, no functions).');
  }
  let constraint = compiledFormats.get(key);
  if (!constraint) {
    constraint = new JsonSchemaConstraint(schema, 'responseFormat');
    if (compiledFormats.size >= FORMATS_KEPT) compiledFormats.delete(compiledFormats.keys().next().value!);
    compiledFormats.set(key, constraint);
  }
  return constraint;
}
