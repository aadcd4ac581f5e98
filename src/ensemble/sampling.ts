/**
 * Sampling pieces of a generation: the seeded random numbers, the ensemble distribution a token
 * is drawn from, and SAFE's acceptance test with its two rejection rules. Pure functions over
 * probabilities; the generation loop (generation.ts) decides where they apply.
 *
 * Exactness (rule `residual`): at a tested position the drafter proposed t ~ q (its tempered,
 * truncated distribution, read as a distribution over strings). Accepting t with probability
 * min(1, p(t)/q(t)) and otherwise drawing from max(0, p − q) normalised commits a string
 * distributed exactly as p = P_ens over the UniTE union: p(x) = min(p(x), q(x)) +
 * (1 − Σ min(p, q)) · max(0, p(x) − q(x)) / Σ max(0, p − q), because both sums equal
 * 1 − Σ min(p, q) (q's mass outside the union is never accepted, since p is 0 there).
 * @module
 */
import { webcrypto } from 'node:crypto';
import type { EnsembleDecision } from './aggregate.js';
import type { RejectionRule } from './options.js';
import { isBareSpace } from './vocabulary.js';

/** What a random number is for: each purpose has its own stream. */
export const Stream = {
  /** The drafter's draw of a token. */
  Draft: 1,
  /** SAFE's acceptance test. */
  Accept: 2,
  /** The draw after a rejection (residual or ensemble). */
  Rejection: 3,
  /** A draw from the ensemble distribution (every-token, gac-threshold). */
  Ensemble: 4,
} as const;
/** One of {@link Stream}'s values. */
export type Stream = (typeof Stream)[keyof typeof Stream];

/** 32-bit integer hash with good avalanche (Wellons' lowbias32). */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * The random numbers of one generation, from its seed. Counter-based: the number for a
 * (purpose, cycle, token index) is a hash of them and the seed, not the next one of a stream,
 * so work done ahead and thrown away (drafting while the verifiers score) changes nothing that
 * follows: pipelined execution samples exactly what sequential execution samples.
 */
export class SamplingRandom {
  private readonly lo: number;
  private readonly hi: number;

  constructor(readonly seed: number) {
    this.lo = seed >>> 0;
    this.hi = Math.floor(seed / 4294967296) >>> 0;
  }

  /** A uniform number in [0, 1) with 53 random bits for `stream` at (`cycle`, `index`). */
  uniform(stream: Stream, cycle: number, index: number): number {
    const key = mix(this.lo ^ mix(this.hi ^ mix(stream ^ mix((cycle >>> 0) ^ mix(index >>> 0)))));
    const a = mix(key ^ 0x9e3779b9) >>> 5; // 27 bits
    const b = mix(key ^ 0x85ebca6b) >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }
}

/** A seed for a generation that was given none (from the OS's random source, never Math.random). */
export function freshSeed(): number {
  const words = webcrypto.getRandomValues(new Uint32Array(2));
  return (words[0]! & 0x1fffff) * 4294967296 + words[1]!;
}

/**
 * The distribution a sampled token is drawn from at an ensemble point: the decision's scores
 * normalised to sum 1. Without sharpening the scores are the averaged distribution; when the
 * decision was sharpened (greedy mode's rule: the top average below `sharpening.below`), the
 * sharpened scores, with bare spaces removed as greedy mode removes them from the candidates.
 * `exponent` (1 / temperature with `temperatureAt: 'ensemble'`) tempers the result.
 */
export function ensembleProbabilities(decision: EnsembleDecision, exponent = 1): Float64Array {
  const { keys, scores, sharpened } = decision;
  const out = Float64Array.from(scores);
  if (sharpened && keys.some((k) => !isBareSpace(k))) keys.forEach((k, e) => isBareSpace(k) && (out[e] = 0));
  return temperedDistribution(out, exponent) ?? Float64Array.from(decision.average);
}

/**
 * `weights` raised to `exponent` (1 / temperature with `temperatureAt: 'ensemble'`) and
 * normalized to sum 1, in place; null when nothing is left. Scaled by the largest first, so that
 * a high power of small probabilities does not underflow to an all-zero row.
 */
export function temperedDistribution(weights: Float64Array, exponent: number): Float64Array | null {
  if (exponent !== 1) {
    let top = 0;
    for (const w of weights) if (w > top) top = w;
    if (top > 0) for (let e = 0; e < weights.length; e++) weights[e] = (weights[e]! / top) ** exponent;
  }
  let sum = 0;
  for (const w of weights) sum += w;
  if (!(sum > 0)) return null;
  for (let e = 0; e < weights.length; e++) weights[e]! /= sum;
  return weights;
}

/** Index drawn from `weights` (non-negative, any sum > 0) with `uniform` in [0, 1), by inverse CDF. */
export function drawIndex(weights: ArrayLike<number>, uniform: number): number {
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += weights[i]!;
  const target = uniform * sum;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    if (!(w > 0)) continue;
    acc += w;
    last = i;
    if (acc > target) return i;
  }
  return last;
}

/** The outcome of the acceptance test at one position. */
export interface AcceptanceOutcome {
  /** min(1, p(t) / q(t)). */
  acceptProbability: number;
  /** Whether the drafted token stands. */
  accepted: boolean;
  /** After a rejection: the drawn union entry and the distribution it was drawn from. */
  drawn: { entry: number; from: 'residual' | 'ensemble'; probability: number } | null;
}

/**
 * SAFE's acceptance test at a stable position. `p`: the ensemble distribution over the union;
 * `q`: the drafter's probability of each union string; `drafted`: the entry of the drafted
 * token (-1 when its string is outside the union); `qDrafted`: the drafter's probability of its
 * string. On rejection `residual` draws from max(0, p − q) (exact: the committed string is
 * distributed as p), `ensemble` from p itself (the paper's literal reading, biased toward the
 * drafter: see the module comment).
 */
export function acceptanceTest(
  p: Float64Array,
  q: Float64Array,
  drafted: number,
  qDrafted: number,
  rule: RejectionRule,
  acceptUniform: number,
  rejectionUniform: number,
): AcceptanceOutcome {
  const pDrafted = drafted >= 0 ? p[drafted]! : 0;
  const acceptProbability = qDrafted > 0 ? Math.min(1, pDrafted / qDrafted) : 1;
  if (acceptUniform < acceptProbability) return { acceptProbability, accepted: true, drawn: null };
  let from: 'residual' | 'ensemble' = rule;
  let weights: Float64Array = p;
  if (rule === 'residual') {
    const residual = new Float64Array(p.length);
    let mass = 0;
    for (let e = 0; e < p.length; e++) {
      residual[e] = Math.max(0, p[e]! - (e === drafted ? qDrafted : q[e]!));
      mass += residual[e]!;
    }
    // Rounding alone can empty the residual (p and q equal on the union): p is then the answer.
    if (mass > 1e-12) weights = residual;
    else from = 'ensemble';
  }
  const entry = drawIndex(weights, rejectionUniform);
  let total = 0;
  for (const w of weights) total += w;
  return { acceptProbability, accepted: false, drawn: { entry, from, probability: weights[entry]! / total } };
}
