/**
 * A byte-level automaton for the JSON texts a compiled schema allows (schema.ts). A state is a
 * set of configurations (a union keeps several alive); each configuration is immutable, so
 * walking a token trie can branch from any of them without copying. Every configuration has a
 * `key` (equal keys: equal futures), used to cache token masks, and `rest`, the fewest bytes
 * that complete the text from it.
 * @module
 */
import { boundedExtension, MAX_FRACTION_DIGITS, prefixValue, type NumberPrefix } from './numbers.js';
import { MAX_INTEGER_DIGITS, withinBounds, type GrammarNode } from './schema.js';

/**
 * Most whitespace bytes in a row between tokens of the JSON: one space or newline (`{"a": 1, "b": 2}`).
 * Small models given more fill the text with blank lines (measured on the bundled models:
 * runs of 16 newlines wherever 16 were allowed); the JSON means the same either way.
 */
export const MAX_WHITESPACE_RUN = 1;
/** Most exponent digits. */
const MAX_EXPONENT_DIGITS = 3;

type ObjectNode = Extract<GrammarNode, { kind: 'object' }>;
type ArrayNode = Extract<GrammarNode, { kind: 'array' }>;
type StringNode = Extract<GrammarNode, { kind: 'string' }>;
type NumberNode = Extract<GrammarNode, { kind: 'number' }>;

/** What follows a completed value. */
type Frame =
  | { t: 'done' }
  | { t: 'objAfter'; node: ObjectNode; next: number; up: Frame; memo?: Memo }
  | { t: 'keyColon'; node: ObjectNode; prop: number; up: Frame; memo?: Memo }
  | { t: 'arrAfter'; node: ArrayNode; count: number; up: Frame; memo?: Memo };

interface Memo {
  key: string;
  rest: number;
}

/** One configuration of the automaton. */
export type Config =
  | { t: 'value'; node: GrammarNode; up: Frame; ws: number }
  | { t: 'after'; up: Frame; ws: number }
  | { t: 'objOpen'; node: ObjectNode; up: Frame; ws: number; comma: boolean; next: number }
  | { t: 'key'; node: ObjectNode; props: number[]; pos: number; up: Frame }
  | { t: 'str'; node: StringNode; up: Frame; len: number; pending: number; escape: number }
  | { t: 'num'; node: NumberNode; up: Frame; p: NumberPrefix; phase: 'sign' | 'int' | 'dot' | 'frac' | 'e' | 'esign' | 'exp'; exp: number }
  | { t: 'lit'; options: Uint8Array[]; pos: number; up: Frame; id: number };

const DONE: Frame = { t: 'done' };

/** The configurations at the start of a text of `root`. */
export function startConfigs(root: GrammarNode): Config[] {
  return [{ t: 'value', node: root, up: DONE, ws: 0 }];
}

const isWs = (b: number) => b === 0x20 || b === 0x0a;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** The configurations after `byte` from `c` (none: the byte leaves the grammar). */
export function step(c: Config, byte: number, out: Config[]): void {
  switch (c.t) {
    case 'value':
      if (isWs(byte)) {
        if (c.ws < MAX_WHITESPACE_RUN) out.push({ ...c, ws: c.ws + 1 });
        return;
      }
      return begin(c.node, c.up, byte, out);
    case 'after':
      return afterValue(c, byte, out);
    case 'objOpen':
      return objectOpen(c, byte, out);
    case 'key': {
      let done = -1;
      const props: number[] = [];
      for (const i of c.props) {
        const key = c.node.properties[i]!.key;
        if (key[c.pos] !== byte) continue;
        if (c.pos + 1 === key.length) done = i;
        else props.push(i);
      }
      if (props.length > 0) out.push({ ...c, props, pos: c.pos + 1 });
      if (done >= 0) out.push({ t: 'after', up: { t: 'keyColon', node: c.node, prop: done, up: c.up }, ws: 0 });
      return;
    }
    case 'str':
      return stringByte(c, byte, out);
    case 'num':
      return numberByte(c, byte, out);
    case 'lit': {
      let complete = false;
      const options: Uint8Array[] = [];
      for (const o of c.options) {
        if (o[c.pos] !== byte) continue;
        if (c.pos + 1 === o.length) complete = true;
        else options.push(o);
      }
      if (options.length > 0) out.push({ ...c, options, pos: c.pos + 1 });
      if (complete) out.push({ t: 'after', up: c.up, ws: 0 });
      return;
    }
  }
}

/** The first byte of a value of `node`. */
function begin(node: GrammarNode, up: Frame, byte: number, out: Config[]): void {
  switch (node.kind) {
    case 'union':
      for (const option of node.options) begin(option, up, byte, out);
      return;
    case 'object':
      if (byte === 0x7b) out.push({ t: 'objOpen', node, up, ws: 0, comma: false, next: 0 });
      return;
    case 'array':
      if (byte === 0x5b) out.push({ t: 'value', node: node.items, up: { t: 'arrAfter', node, count: 1, up }, ws: 0 }, { t: 'after', up: { t: 'arrAfter', node, count: 0, up }, ws: -1 });
      return;
    case 'string':
      if (byte === 0x22) out.push({ t: 'str', node, up, len: 0, pending: 0, escape: 0 });
      return;
    case 'number': {
      const c: Config = { t: 'num', node, up, p: { negative: false, int: '', dot: false, frac: '' }, phase: 'sign', exp: 0 };
      if (byte === 0x2d) {
        const next: Config = { ...c, p: { ...c.p, negative: true } };
        if (numberFeasible(next)) out.push(next);
      } else numberByte(c, byte, out);
      return;
    }
    case 'literal': {
      const lit: Config = { t: 'lit', options: node.options, pos: 0, up, id: node.id };
      step(lit, byte, out);
      return;
    }
  }
}

/**
 * After a value (or, ws -1, right after an array's `[`, where only `]` may close it): whitespace,
 * then what the enclosing frame takes next.
 */
function afterValue(c: Extract<Config, { t: 'after' }>, byte: number, out: Config[]): void {
  const f = c.up;
  if (f.t === 'done') return;
  if (isWs(byte)) {
    if (c.ws >= 0 && c.ws < MAX_WHITESPACE_RUN) out.push({ ...c, ws: c.ws + 1 });
    return;
  }
  switch (f.t) {
    case 'keyColon':
      if (byte === 0x3a) {
        const value = f.prop >= 0 ? f.node.properties[f.prop]!.value : f.node.freeKeys!;
        out.push({ t: 'value', node: value, up: { t: 'objAfter', node: f.node, next: f.prop + 1, up: f.up }, ws: 0 });
      }
      return;
    case 'objAfter':
      if (byte === 0x2c && (f.node.freeKeys || f.next < f.node.properties.length)) out.push({ t: 'objOpen', node: f.node, up: f.up, ws: 0, comma: true, next: f.next });
      else if (byte === 0x7d && !requiredFrom(f.node, f.next)) out.push({ t: 'after', up: f.up, ws: 0 });
      return;
    case 'arrAfter':
      if (byte === 0x2c && c.ws >= 0 && f.count < f.node.maxItems) out.push({ t: 'value', node: f.node.items, up: { ...f, count: f.count + 1, memo: undefined }, ws: 0 });
      else if (byte === 0x5d && f.count >= f.node.minItems) out.push({ t: 'after', up: f.up, ws: 0 });
      return;
  }
}

/** Whether a property at or after `from` is required (the object cannot close yet). */
function requiredFrom(node: ObjectNode, from: number): boolean {
  for (let i = Math.max(0, from); i < node.properties.length; i++) if (node.properties[i]!.required) return true;
  return false;
}

/** After `{` or a `,` in an object: whitespace, then a key (listed in order, optional ones skippable) or `}`. */
function objectOpen(c: Extract<Config, { t: 'objOpen' }>, byte: number, out: Config[]): void {
  if (isWs(byte)) {
    if (c.ws < MAX_WHITESPACE_RUN) out.push({ ...c, ws: c.ws + 1 });
    return;
  }
  const { node } = c;
  if (byte === 0x7d && !c.comma && !requiredFrom(node, 0)) {
    out.push({ t: 'after', up: c.up, ws: 0 });
    return;
  }
  if (byte !== 0x22) return;
  if (node.freeKeys) {
    const keyString: StringNode = FREE_KEY;
    out.push({ t: 'str', node: keyString, up: { t: 'keyColon', node, prop: -1, up: c.up }, len: 0, pending: 0, escape: 0 });
    return;
  }
  const props: number[] = [];
  for (let i = c.next; i < node.properties.length; i++) {
    props.push(i);
    if (node.properties[i]!.required) break;
  }
  if (props.length > 0) out.push({ t: 'key', node, props, pos: 1, up: c.up });
}

/** The string node of a free-form object's keys. */
const FREE_KEY: StringNode = { kind: 'string', id: -1, minLength: 0, maxLength: Infinity, minBytes: 2 };

function stringByte(c: Extract<Config, { t: 'str' }>, byte: number, out: Config[]): void {
  if (c.escape > 0) {
    // 1: after a backslash; 2–5: hex digits of \u left.
    if (c.escape === 1) {
      if (byte === 0x75) out.push({ ...c, escape: 5 });
      else if ('"\\/bfnrt'.includes(String.fromCharCode(byte))) out.push({ ...c, escape: 0, len: c.len + 1 });
    } else if (isHex(byte)) out.push(c.escape === 2 ? { ...c, escape: 0, len: c.len + 1 } : { ...c, escape: c.escape - 1 });
    return;
  }
  if (c.pending > 0) {
    if ((byte & 0xc0) === 0x80) out.push({ ...c, pending: c.pending - 1 });
    return;
  }
  if (byte === 0x22) {
    if (c.len >= c.node.minLength) out.push({ t: 'after', up: c.up, ws: 0 });
    return;
  }
  if (c.len >= c.node.maxLength || byte < 0x20 || byte === 0x7f) return;
  if (byte === 0x5c) {
    out.push({ ...c, escape: 1 });
    return;
  }
  if (byte < 0x80) out.push({ ...c, len: c.len + 1 });
  else if (byte >= 0xc2 && byte <= 0xf4) out.push({ ...c, len: c.len + 1, pending: byte >= 0xf0 ? 3 : byte >= 0xe0 ? 2 : 1 });
}

const bounded = (node: NumberNode) => node.minimum !== null || node.maximum !== null;

function numberFeasible(c: Extract<Config, { t: 'num' }>): boolean {
  return !bounded(c.node) || boundedExtension(c.p, c.node.minimum, c.node.maximum, c.node.integer) < Infinity;
}

/** Whether the number written so far is a complete one the node allows. */
function numberComplete(c: Extract<Config, { t: 'num' }>): boolean {
  if (c.phase === 'int' || c.phase === 'frac' || c.phase === 'exp') return !bounded(c.node) || withinBounds(prefixValue(c.p), c.node.minimum, c.node.maximum);
  return false;
}

function numberByte(c: Extract<Config, { t: 'num' }>, byte: number, out: Config[]): void {
  const { node, p } = c;
  let next: Extract<Config, { t: 'num' }> | null = null;
  if (isDigit(byte)) {
    const digit = String.fromCharCode(byte);
    if (c.phase === 'sign') next = { ...c, phase: 'int', p: { ...p, int: digit } };
    else if (c.phase === 'int' && p.int !== '0' && p.int.length < MAX_INTEGER_DIGITS) next = { ...c, p: { ...p, int: p.int + digit } };
    else if ((c.phase === 'dot' || c.phase === 'frac') && p.frac.length < MAX_FRACTION_DIGITS) next = { ...c, phase: 'frac', p: { ...p, frac: p.frac + digit } };
    else if ((c.phase === 'e' || c.phase === 'esign' || c.phase === 'exp') && c.exp < MAX_EXPONENT_DIGITS) next = { ...c, phase: 'exp', exp: c.exp + 1 };
  } else if (byte === 0x2e && c.phase === 'int' && !node.integer) next = { ...c, phase: 'dot', p: { ...p, dot: true } };
  else if ((byte === 0x65 || byte === 0x45) && (c.phase === 'int' || c.phase === 'frac') && !node.integer && !bounded(node)) next = { ...c, phase: 'e' };
  else if ((byte === 0x2b || byte === 0x2d) && c.phase === 'e') next = { ...c, phase: 'esign' };
  if (next) {
    if (numberFeasible(next)) out.push(next);
    return;
  }
  // Any other byte ends the number (where it is complete) and belongs to what follows it.
  if (numberComplete(c)) afterValue({ t: 'after', up: c.up, ws: 0 }, byte, out);
}

/** Whether the text may end here. */
export function accepts(c: Config): boolean {
  if (c.t === 'after') return c.up.t === 'done';
  if (c.t === 'num') return c.up.t === 'done' && numberComplete(c);
  return false;
}

/** A string equal for configurations with equal futures. */
export function configKey(c: Config): string {
  switch (c.t) {
    case 'value':
      return `v${c.node.id},${c.ws}|${frameMemo(c.up).key}`;
    case 'after':
      return `a${c.ws}|${frameMemo(c.up).key}`;
    case 'objOpen':
      return `o${c.node.id},${c.ws},${c.comma ? 1 : 0},${c.next}|${frameMemo(c.up).key}`;
    case 'key':
      return `k${c.node.id},${c.pos},${c.props.join('.')}|${frameMemo(c.up).key}`;
    case 'str': {
      const counted = c.node.minLength > 0 || c.node.maxLength < Infinity ? c.len : 0;
      return `s${c.node.id},${counted},${c.pending},${c.escape}|${frameMemo(c.up).key}`;
    }
    case 'num': {
      const written = bounded(c.node) ? `${c.p.negative ? '-' : ''}${c.p.int}${c.p.dot ? '.' : ''}${c.p.frac}` : `${c.p.int === '0' ? '0' : c.p.int.length},${c.p.frac.length}`;
      return `n${c.node.id},${c.phase},${written},${c.exp}|${frameMemo(c.up).key}`;
    }
    case 'lit':
      // The options left are those that start with the bytes matched so far: those bytes name them.
      return `l${c.id},${c.options[0]!.subarray(0, c.pos).join('.')}|${frameMemo(c.up).key}`;
  }
}

/** Fewest bytes that complete the text from `c`. */
export function restBytes(c: Config): number {
  switch (c.t) {
    case 'value':
      return c.node.minBytes + frameMemo(c.up).rest;
    case 'after':
      if (c.ws >= 0) return frameMemo(c.up).rest;
      // Right after `[`: only `]`, where the array may be empty.
      return (c.up as Extract<Frame, { t: 'arrAfter' }>).node.minItems > 0 ? Infinity : 1 + frameMemo((c.up as Extract<Frame, { t: 'arrAfter' }>).up).rest;
    case 'objOpen': {
      const node = c.node;
      if (node.freeKeys) return (c.comma ? 2 + 1 + node.freeKeys.minBytes : 0) + 1 + frameMemo(c.up).rest;
      let needed = requiredBytes(node, c.next);
      if (c.comma && !requiredFrom(node, c.next)) needed = Math.min(...node.properties.slice(c.next).map((p) => p.key.length + 1 + p.value.minBytes));
      else if (needed > 0) needed -= 1; // no comma before the first key
      return needed + 1 + frameMemo(c.up).rest;
    }
    case 'key':
      return Math.min(...c.props.map((i) => c.node.properties[i]!.key.length - c.pos + frameMemo({ t: 'keyColon', node: c.node, prop: i, up: c.up }).rest));
    case 'str':
      return (c.escape === 1 ? 1 : c.escape > 1 ? c.escape - 1 : 0) + c.pending + Math.max(0, c.node.minLength - c.len - (c.escape > 0 ? 1 : 0)) + 1 + frameMemo(c.up).rest;
    case 'num': {
      const extra = bounded(c.node) ? boundedExtension(c.p, c.node.minimum, c.node.maximum, c.node.integer) : numberComplete(c) ? 0 : 1;
      return extra + frameMemo(c.up).rest;
    }
    case 'lit':
      return Math.min(...c.options.map((o) => o.length - c.pos)) + frameMemo(c.up).rest;
  }
}

/** Bytes of `, "key": value` for every required property from `from` on, and the closing brace's comma-less start. */
function requiredBytes(node: ObjectNode, from: number): number {
  let total = 0;
  for (let i = from; i < node.properties.length; i++) {
    const p = node.properties[i]!;
    if (p.required) total += 1 + p.key.length + 1 + p.value.minBytes;
  }
  return total;
}

function frameMemo(f: Frame): Memo {
  if (f.t === 'done') return DONE_MEMO;
  if (f.memo) return f.memo;
  const up = frameMemo(f.up);
  let memo: Memo;
  switch (f.t) {
    case 'objAfter':
      memo = { key: `A${f.node.id},${f.next}|${up.key}`, rest: requiredBytes(f.node, f.next) + 1 + up.rest };
      break;
    case 'keyColon': {
      const value = f.prop >= 0 ? f.node.properties[f.prop]!.value : f.node.freeKeys!;
      const after = frameMemo({ t: 'objAfter', node: f.node, next: f.prop + 1, up: f.up });
      memo = { key: `K${f.node.id},${f.prop}|${up.key}`, rest: 1 + value.minBytes + after.rest };
      break;
    }
    case 'arrAfter':
      memo = { key: `R${f.node.id},${Math.min(f.count, Math.max(f.node.minItems, f.node.maxItems === Infinity ? 0 : f.node.maxItems))}|${up.key}`, rest: Math.max(0, f.node.minItems - f.count) * (1 + f.node.items.minBytes) + 1 + up.rest };
      break;
  }
  f.memo = memo;
  return memo;
}

const DONE_MEMO: Memo = { key: '$', rest: 0 };

/** The configurations after `bytes` from `configs` (empty: the bytes leave the grammar). */
export function advance(configs: readonly Config[], bytes: Uint8Array, from = 0, to = bytes.length): Config[] {
  let current = configs as Config[];
  for (let i = from; i < to && current.length > 0; i++) {
    const next: Config[] = [];
    for (const c of current) step(c, bytes[i]!, next);
    current = next.length > 1 ? dedupe(next) : next;
  }
  return current;
}

/** Drops configurations with equal keys (a union's options that have become alike). */
export function dedupe(configs: Config[]): Config[] {
  const seen = new Set<string>();
  return configs.filter((c) => {
    const k = configKey(c);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
