/**
 * A byte-level automaton for the texts a compiled grammar allows (schema.ts): JSON values, and
 * the literals, sequences and free text of tool-call replies. A state is a set of
 * configurations (a union keeps several alive); each configuration is immutable (configs.ts),
 * so walking a token trie can branch from any of them without copying. Keys and shortest
 * completions are measures.ts's.
 * @module
 */
import { bounded, DONE, numberComplete, numberFeasible, requiredFrom, type Config, type Frame, type ObjectNode, type StringNode } from './configs.js';
import { dedupe } from './measures.js';
import { MAX_FRACTION_DIGITS } from './numbers.js';
import { MAX_INTEGER_DIGITS, type GrammarNode } from './schema.js';

export type { Config } from './configs.js';
export { configKey, dedupe, restBytes } from './measures.js';

/**
 * Most whitespace bytes in a row between tokens of the JSON: one space or newline (`{"a": 1, "b": 2}`).
 * Small models given more fill the text with blank lines (measured on the bundled models:
 * runs of 16 newlines wherever 16 were allowed); the JSON means the same either way.
 */
export const MAX_WHITESPACE_RUN = 1;
/** Most exponent digits. */
const MAX_EXPONENT_DIGITS = 3;

/** The configurations at the start of a text of `root`. */
export function startConfigs(root: GrammarNode): Config[] {
  // No blank before the value (ws -1): JSON would allow one, but it is a wasted token, and a tokenizer
  // that prefixes words with a space (` {`) then starts every reply with whitespace.
  return [{ t: 'value', node: root, up: DONE, ws: -1 }];
}

const isWs = (b: number) => b === 0x20 || b === 0x0a;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** The configurations after `byte` from `c` (none: the byte leaves the grammar). */
export function step(c: Config, byte: number, out: Config[]): void {
  switch (c.t) {
    case 'value':
      if (isWs(byte) && c.ws >= 0) {
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
    case 'free': {
      const marker = c.node.marker;
      // The markers of chat templates do not overlap themselves: a mismatch restarts the match.
      const matched = byte === marker[c.matched] ? c.matched + 1 : byte === marker[0] ? 1 : 0;
      if (matched === marker.length) out.push({ t: 'after', up: c.up, ws: 0 });
      else out.push({ ...c, matched });
      return;
    }
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
    case 'sequence':
      return enter(node.parts[0]!, { t: 'seq', node, next: 1, up }, byte, out);
    case 'text':
      return step({ t: 'free', node, matched: 0, up }, byte, out);
  }
}

/** The first byte of a sequence's part: a JSON value in a sequence may follow a blank, as JSON values do. */
function enter(part: GrammarNode, up: Frame, byte: number, out: Config[]): void {
  if (part.kind === 'literal' || part.kind === 'text' || part.kind === 'sequence') begin(part, up, byte, out);
  else step({ t: 'value', node: part, up, ws: 0 }, byte, out);
}

/**
 * After a value (or, ws -1, right after an array's `[`, where only `]` may close it): whitespace,
 * then what the enclosing frame takes next.
 */
function afterValue(c: Extract<Config, { t: 'after' }>, byte: number, out: Config[]): void {
  const f = c.up;
  if (f.t === 'done') return;
  // Sequences are written exactly: no whitespace between their parts.
  if (f.t === 'seq' && f.next < f.node.parts.length) {
    return enter(f.node.parts[f.next]!, { ...f, next: f.next + 1, memo: undefined }, byte, out);
  }
  if (f.t === 'seq' || f.t === 'rep') {
    const count = f.t === 'rep' ? f.count : 1;
    const repeat = f.node.repeat;
    if (repeat && count < repeat.max) begin(repeat.next, { t: 'rep', node: f.node, count: count + 1, up: f.up }, byte, out);
    return afterValue({ t: 'after', up: f.up, ws: 0 }, byte, out);
  }
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
  if (c.t === 'after') return frameAccepts(c.up);
  if (c.t === 'num') return frameAccepts(c.up) && numberComplete(c);
  if (c.t === 'free') return c.node.endable;
  // Nothing written yet: a reply that may be free text may be empty.
  if (c.t === 'value') return c.node.minBytes === 0 && startsWithEndableText(c.node);
  return false;
}

function startsWithEndableText(node: GrammarNode): boolean {
  if (node.kind === 'text') return node.endable;
  return node.kind === 'sequence' && startsWithEndableText(node.parts[0]!);
}

/** Whether the text may end where a value completes into `f`. */
function frameAccepts(f: Frame): boolean {
  if (f.t === 'done') return true;
  if (f.t === 'seq') return f.next === f.node.parts.length && frameAccepts(f.up);
  if (f.t === 'rep') return frameAccepts(f.up);
  return false;
}

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
