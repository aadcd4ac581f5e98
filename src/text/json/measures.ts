/**
 * Measures of configurations: a key (equal keys, equal futures: token masks are cached by it)
 * and the fewest bytes that complete the text.
 * @module
 */
import { boundedExtension } from './numbers.js';
import { bounded, numberComplete, requiredFrom, type Config, type Frame, type Memo, type ObjectNode } from './configs.js';

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
    case 'free':
      return `f${c.node.id},${c.matched}|${frameMemo(c.up).key}`;
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
    case 'free':
      return c.node.endable ? 0 : c.node.marker.length - c.matched + frameMemo(c.up).rest;
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
    case 'seq': {
      let rest = 0;
      for (let i = f.next; i < f.node.parts.length; i++) rest += f.node.parts[i]!.minBytes;
      memo = { key: `S${f.node.id},${f.next}|${up.key}`, rest: rest + up.rest };
      break;
    }
    case 'rep':
      memo = { key: `P${f.node.id},${f.count}|${up.key}`, rest: up.rest };
      break;
    case 'arrAfter':
      memo = { key: `R${f.node.id},${Math.min(f.count, Math.max(f.node.minItems, f.node.maxItems === Infinity ? 0 : f.node.maxItems))}|${up.key}`, rest: Math.max(0, f.node.minItems - f.count) * (1 + f.node.items.minBytes) + 1 + up.rest };
      break;
  }
  f.memo = memo;
  return memo;
}

const DONE_MEMO: Memo = { key: '$', rest: 0 };

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
