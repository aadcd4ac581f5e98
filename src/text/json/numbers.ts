/**
 * Number prefixes under bounds: how many bytes the shortest ending of a JSON number that starts
 * with a prefix takes, so that it lands within `minimum` / `maximum` (Infinity: none does; the
 * prefix is then refused). Bounded numbers are written without an exponent.
 * @module
 */
import { MAX_INTEGER_DIGITS, type Bound } from './schema.js';

/** Most fraction digits a number may have. */
export const MAX_FRACTION_DIGITS = 12;

/** A number written so far: sign, integer digits, whether a dot came, fraction digits. */
export interface NumberPrefix {
  negative: boolean;
  int: string;
  dot: boolean;
  frac: string;
}

/** The value of a complete prefix. */
export function prefixValue(p: NumberPrefix): number {
  return Number(`${p.negative ? '-' : ''}${p.int}${p.frac ? `.${p.frac}` : ''}`);
}

/** An interval of magnitudes (values ≥ 0) with open or closed ends. */
interface Span {
  lo: number;
  loOpen: boolean;
  hi: number;
  hiOpen: boolean;
}

/** Relative slack for comparisons of decimals written in binary floating point. */
const SLACK = 1e-9;

/**
 * Fewest bytes that turn `p` into a number within the bounds (0: it is one already), or
 * Infinity when none exists. `integer`: no fraction may follow.
 */
export function boundedExtension(p: NumberPrefix, minimum: Bound | null, maximum: Bound | null, integer: boolean): number {
  const span = magnitudes(p.negative, minimum, maximum);
  if (!span) return Infinity;
  if (p.int === '') {
    // Only "-": one digit, then whatever that digit needs.
    let best = Infinity;
    for (let digit = 0; digit <= 9; digit++) best = Math.min(best, 1 + integerExtension(String(digit), span, integer));
    return best;
  }
  if (p.dot) {
    const written = p.frac.length;
    return fractionDigits(Number(`${p.int}.${p.frac || '0'}`), written, span, written === 0 ? 1 : 0);
  }
  return integerExtension(p.int, span, integer);
}

/** The magnitudes a number of this sign may have within the bounds, or null. */
function magnitudes(negative: boolean, minimum: Bound | null, maximum: Bound | null): Span | null {
  let span: Span;
  if (!negative) span = { lo: minimum?.value ?? 0, loOpen: minimum?.exclusive ?? false, hi: maximum?.value ?? Infinity, hiOpen: maximum?.exclusive ?? false };
  else span = { lo: maximum ? -maximum.value : 0, loOpen: maximum?.exclusive ?? false, hi: minimum ? -minimum.value : Infinity, hiOpen: minimum?.exclusive ?? false };
  if (span.lo < 0) span = { ...span, lo: 0, loOpen: false };
  if (span.hi < span.lo || (span.hi === span.lo && (span.loOpen || span.hiOpen))) return null;
  return span;
}

function inside(v: number, s: Span): boolean {
  const e = SLACK * Math.max(1, Math.abs(v));
  const aboveLo = s.loOpen ? v > s.lo + e : v >= s.lo - e;
  const belowHi = s.hiOpen ? v < s.hi - e : v <= s.hi + e;
  return aboveLo && belowHi;
}

/** Bytes after integer digits `digits` (no dot yet) to a magnitude within `span`. */
function integerExtension(digits: string, span: Span, integer: boolean): number {
  const d = Number(digits);
  if (inside(d, span)) return 0;
  let best = integer ? Infinity : 1 + fractionDigits(d, 0, span, 1);
  if (digits === '0') return best;
  for (let j = 1; digits.length + j <= MAX_INTEGER_DIGITS && j < best; j++) {
    const from = d * 10 ** j;
    const to = (d + 1) * 10 ** j; // exclusive
    if (to <= span.lo || from > span.hi) continue;
    // An integer of j more digits within the span?
    if (multipleWithin(1, from, to, span) !== null) return Math.min(best, j);
    if (!integer) {
      for (let f = 1; j + 1 + f < best && f <= MAX_FRACTION_DIGITS; f++) {
        if (multipleWithin(10 ** -f, from, to, span) !== null) {
          best = j + 1 + f;
          break;
        }
      }
    }
  }
  return best;
}

/**
 * Fewest further fraction digits (at least `atLeast`) after a value `v` with `written` fraction
 * digits that reach the span: the reachable values are v + k·10^-(written+e), 0 ≤ k < 10^e.
 */
function fractionDigits(v: number, written: number, span: Span, atLeast: number): number {
  if (atLeast === 0 && inside(v, span)) return 0;
  const end = v + 10 ** -written;
  for (let e = Math.max(1, atLeast); written + e <= MAX_FRACTION_DIGITS; e++) {
    if (multipleWithin(10 ** -(written + e), v, end, span) !== null) return e;
    if (end <= span.lo || v > span.hi) return Infinity;
  }
  return Infinity;
}

/** The smallest multiple of `step` in [from, to) that lies within the span, or null. */
function multipleWithin(step: number, from: number, to: number, span: Span): number | null {
  const start = Math.max(from, span.lo);
  let k = Math.ceil(start / step - SLACK);
  for (let tries = 0; tries < 3; tries++, k++) {
    const v = Number((k * step).toFixed(Math.max(0, Math.ceil(-Math.log10(step)))));
    if (v >= to - SLACK * Math.max(1, to)) return null;
    if (v < from - SLACK * Math.max(1, from)) continue;
    if (inside(v, span)) return v;
    if (v > span.hi) return null;
  }
  return null;
}
