/**
 * How the benchmark measures speed without biasing it by run order: a Williams design (each
 * method runs in every position and after every other method equally often), a full garbage
 * collection before each timed generation, wall and CPU time, and ratios to the drafter alone
 * with a paired bootstrap interval over problems.
 * @module
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Orders of `m` methods, one per row of a Williams design: every method appears once in every
 * position, and every method directly follows every other one equally often across the rows
 * (so the method that pays for the previous one's garbage is not always the same). `m` rows
 * when `m` is even, `2m` (the design and its mirror) when odd.
 */
export function williamsOrders(m: number): number[][] {
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`williamsOrders: m must be a positive integer, got ${m}`);
  // First row 0, 1, m-1, 2, m-2, ...; row r adds r (mod m).
  const first: number[] = [0];
  for (let i = 1, lo = 1, hi = m - 1; i < m; i++) first.push(i % 2 === 1 ? lo++ : hi--);
  const rows = Array.from({ length: m }, (_, r) => first.map((x) => (x + r) % m));
  return m % 2 === 0 ? rows : [...rows, ...rows.map((row) => [...row].reverse())];
}

let collect: (() => void) | null | undefined;

/**
 * A full, synchronous garbage collection: `global.gc` when Node runs with --expose-gc, else one
 * obtained by turning the flag on at run time. Returns false when neither is possible.
 */
export function fullGc(): boolean {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === 'function') collect = exposed;
    else {
      try {
        setFlagsFromString('--expose-gc');
        collect = runInNewContext('gc') as () => void;
      } catch {
        collect = null;
      }
    }
  }
  if (!collect) return false;
  collect();
  return true;
}

/** Time one call took, on the wall clock and in CPU (every thread of the process: onnxruntime's too). */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; wallMs: number; cpuMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { value, wallMs, cpuMs: (c.user + c.system) / 1000 };
}

/** One timed generation of one method on one problem. */
export interface Measurement {
  /** Index of the problem in the benchmark set. */
  problem: number;
  /** Position of the method in that problem's run order (0 = ran first). */
  position: number;
  /** Generated tokens. */
  tokens: number;
  /** Tokens decided by an ensemble. */
  ensembled: number;
  wallMs: number;
  cpuMs: number;
  /** The final answer was right. */
  correct: boolean;
  /** The output starts with whitespace. */
  startsWithSpace: boolean;
  /** The output names someone the question does not. */
  foreignName: boolean;
}

/** A speed ratio to the reference with its 95% bootstrap interval. */
export interface Ratio {
  ratio: number;
  low: number;
  high: number;
}

/** Tokens per second of a set of measurements on one clock. */
function rate(ms: readonly Measurement[], clock: 'wallMs' | 'cpuMs', pick?: readonly number[]): number {
  let tokens = 0;
  let time = 0;
  const n = pick ? pick.length : ms.length;
  for (let i = 0; i < n; i++) {
    const m = ms[pick ? pick[i]! : i]!;
    tokens += m.tokens;
    time += m[clock];
  }
  return tokens / (time / 1000);
}

/**
 * Speed of `method` relative to `reference` (tokens per second over tokens per second), both
 * measured on the same problems, in the same order of problems. The interval resamples
 * problems with replacement (paired: a resample takes the same problems from both).
 */
export function speedRatio(method: readonly Measurement[], reference: readonly Measurement[], clock: 'wallMs' | 'cpuMs', resamples = 1000, seed = 1): Ratio {
  if (method.length !== reference.length || method.length === 0) throw new RangeError('speedRatio: needs the same non-empty problems for both');
  const ratio = rate(method, clock) / rate(reference, clock);
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const n = method.length;
  const samples: number[] = [];
  const pick = new Array<number>(n);
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < n; i++) pick[i] = Math.floor(rand() * n);
    samples.push(rate(method, clock, pick) / rate(reference, clock, pick));
  }
  samples.sort((a, b) => a - b);
  return { ratio, low: samples[Math.floor(0.025 * resamples)]!, high: samples[Math.ceil(0.975 * resamples) - 1]! };
}

/** Words that start sentences of the demo solutions, not names. */
const NOT_NAMES = new Set(['After', 'The', 'She', 'He', 'How', 'Use']);

/** Whether `output` names a person (a capitalized word) that `question` does not contain. */
export function namesSomeoneElse(output: string, question: string): boolean {
  const words = new Set(question.match(/\p{L}+/gu) ?? []);
  for (const [word] of output.matchAll(/\p{L}+/gu)) if (/^\p{Lu}/u.test(word) && !NOT_NAMES.has(word) && !words.has(word)) return true;
  return false;
}
