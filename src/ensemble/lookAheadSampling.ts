/**
 * Look-ahead scoring when sampling: the distribution SAFE's acceptance test runs over. UniTE's
 * union gives prefix-related strings separate mass ("orn" from one model, "orns" from another),
 * so a sampled "orn" can end a word the other model would have finished. Here the union's top
 * entries are merged into families — a root (no other candidate is a prefix of it) and every
 * candidate that extends it — and each model's probability of a family is its prefix mass of
 * the root: the probability that the text continues with the root's bytes, whatever follows.
 * Families are disjoint events, so P_ens over them (each model normalized over the roots, the
 * weighted mean) is a proper distribution, and the drafter's own prefix masses of the roots are
 * the distribution its draft falls into them with: the acceptance test and the residual stay
 * exact over families. Inside the committed family the drafter writes on from its own
 * distribution (after a rejection, a token drawn from its tokens that start the family).
 * @module
 */
import { planOf, prefixMasses, type LookAheadModel, type PrefixMasses } from './prefixMass.js';
import { drawIndex, temperedDistribution } from './sampling.js';
import { EOS_KEY } from './vocabulary.js';

/** The family distribution at an ensemble point. */
export interface FamilyDistribution {
  /** The roots (union keys), in the candidates' order. */
  roots: string[];
  /** Per model, its share of each family (normalized over the roots). */
  perModel: Float64Array[];
  /** P_ens over the families: {@link perModel} pooled (the weighted mean, or the geometric mean where it applies) and tempered with `temperatureAt: 'ensemble'`. */
  p: Float64Array;
  /** Whether the geometric mean pooled the shares. */
  geometric: boolean;
  /** The drafter's probability of each family under its draft's distribution (its prefix mass of the root; not normalized: the rest is outside every family). */
  q: Float64Array;
  /** What the scoring read: prefix masses, ranges and plans per model (over the roots). */
  scored: PrefixMasses;
}

/** The candidates no other candidate is a prefix of, in order (end-of-sequence is its own). */
export function familyRoots(candidates: readonly string[]): string[] {
  const isPrefix = (a: string, b: string) => a !== b && a !== EOS_KEY && b !== EOS_KEY && b.startsWith(a);
  return candidates.filter((c, i) => candidates.indexOf(c) === i && !candidates.some((o) => isPrefix(o, c)));
}

/**
 * The family a draft falls into: the root its text starts with; -1 when none (outside every
 * family); `undetermined` when its text is still a proper prefix of a root and the draft goes on
 * (its next token decides). `ended`: the draft stops after `text` (end of sequence).
 */
export function familyOfDraft(roots: readonly string[], text: string, ended: boolean): number | 'undetermined' {
  if (text === EOS_KEY) return roots.indexOf(EOS_KEY);
  let undetermined = false;
  for (let r = 0; r < roots.length; r++) {
    const root = roots[r]!;
    if (root === EOS_KEY) continue;
    if (text.startsWith(root)) return r;
    if (!ended && root.startsWith(text)) undetermined = true;
  }
  return undetermined ? 'undetermined' : -1;
}

/**
 * How the models' family shares are pooled into P_ens: `exponent` (1 / T with `temperatureAt:
 * 'ensemble'`, else 1) tempers the pool; `geometricBelow` (the `geometric` sharpening's trigger)
 * pools by the weighted geometric mean wherever the weighted mean's top family is below it.
 */
export interface FamilyPool {
  exponent: number;
  geometricBelow: number | null;
}

/** The arithmetic mean, untempered: SAFE's P_ens. */
const MEAN: FamilyPool = { exponent: 1, geometricBelow: null };

/**
 * Scores the families of `candidates` for every model (drafter first) and pools them (see
 * {@link FamilyPool}). With a tempered pool the models are read at temperature 1 and the
 * drafter's q comes from its draft's distribution ({@link LookAheadModel.draftKept}). Null when aborted.
 */
export async function familyDistribution(models: readonly LookAheadModel[], candidates: readonly string[], pool: FamilyPool = MEAN): Promise<FamilyDistribution | null> {
  const roots = familyRoots(candidates);
  const scored = await prefixMasses(models, roots);
  if (!scored) return null;
  const perModel = scored.masses.map((mass) => {
    const total = mass.reduce((s, x) => s + x, 0);
    return total > 0 ? mass.map((x) => x / total) : new Float64Array(mass.length);
  });
  const mean = new Float64Array(roots.length);
  perModel.forEach((share, mi) => share.forEach((x, r) => (mean[r]! += models[mi]!.weight * x)));
  let pooled = mean;
  let geometric = false;
  if (pool.geometricBelow !== null && Math.max(...mean) < pool.geometricBelow) {
    // A product of experts: a family one model gives no mass gets none. Where every family gets
    // none (each is some model's impossibility), the mean stands.
    const product = Float64Array.from(roots, (_, r) => Math.exp(perModel.reduce((s, share, mi) => s + models[mi]!.weight * Math.log(share[r]!), 0)));
    if (product.some((x) => x > 0)) [pooled, geometric] = [product, true];
  }
  // Normalized (a model with no mass on any root has no say in the mean), then tempered.
  const p = temperedDistribution(Float64Array.from(pooled), pool.exponent) ?? mean;
  return { roots, perModel, p, geometric, q: Float64Array.from(scored.atDraft[0]?.masses ?? scored.masses[0]!), scored };
}

/**
 * The drafter's ids that write family `r` after a rejection: its tokens of the root before the
 * last piece, then one token drawn (with `uniform`) from its likeliest tokens starting with that
 * piece, in proportion to their probabilities. Empty when it cannot write the root.
 */
export function drafterWayInto(family: FamilyDistribution, r: number, uniform: number): number[] {
  const plan = family.scored.plans[0]![r];
  // Inside the family the drafter writes on from its draft's distribution.
  const range = (family.scored.atDraft[0]?.ranges ?? family.scored.ranges[0]!)[r];
  if (!plan || !range || range.ids.length === 0) return [];
  const weights = range.probabilities;
  const total = weights.reduce((s, w) => s + w, 0);
  return [...plan.path, range.ids[drawIndex(Float64Array.from(weights), uniform)]!];
}

/** A model's best tokens at the point with their (kept) probabilities, for {@link acceptanceLowerBound}. */
export interface TopView {
  model: Pick<LookAheadModel, 'vocab' | 'weight' | 'context' | 'dummySpace'>;
  ids: ArrayLike<number>;
  probabilities: ArrayLike<number>;
}

/**
 * A lower bound of the acceptance probability min(1, P_ens(F) / q(F)) of the draft's family `r`
 * from the models' best tokens alone: a test whose uniform falls below it accepts for sure, and
 * the whole rows need not be read (exact: the full test would accept with that uniform too). A lower bound L of
 * the models' mean share of F: each model's best tokens starting with the root (where it writes the root as one
 * token), divided by an upper bound of its normalizer (1 minus its best tokens that start no
 * family); an upper bound of q(F): 1 minus the drafter's best tokens (`drafter`: as it drafts)
 * that can start no draft in F. Tempered by the pool's exponent e, the other n − 1 families' powers
 * sum to at most c·(1 − L)^e (c = 1 for e ≥ 1, (n − 1)^(1 − e) below), so P_ens(F) ≥ L^e / (L^e + c·(1 − L)^e).
 */
export function acceptanceLowerBound(views: readonly TopView[], roots: readonly string[], r: number, pool: FamilyPool = MEAN, drafter: TopView = views[0]!): number {
  const root = roots[r]!;
  const keyOf = (v: TopView, id: number) => (v.model.vocab.isEos(id) ? EOS_KEY : v.model.vocab.key(id));
  const related = (key: string, rootKey: string) => (key === EOS_KEY || rootKey === EOS_KEY ? key === rootKey : key.startsWith(rootKey) || rootKey.startsWith(key));
  let qUpper = 1;
  for (let i = 0; i < drafter.ids.length; i++) if (!related(keyOf(drafter, drafter.ids[i]!), root)) qUpper -= drafter.probabilities[i]!;
  // Each model's share of F from below: 0 where it writes the root in more tokens (or at a dummy-space start).
  const shares = views.map((v) => {
    if (v.model.dummySpace) return 0;
    const plan = planOf(v.model, root);
    if (!plan || plan.path.length > 0) return 0;
    let inFamily = 0;
    let normalizerUpper = 1;
    for (let i = 0; i < v.ids.length; i++) {
      const key = keyOf(v, v.ids[i]!);
      if (root === EOS_KEY ? key === EOS_KEY : key !== EOS_KEY && key.startsWith(root)) inFamily += v.probabilities[i]!;
      if (!roots.some((x) => related(key, x))) normalizerUpper -= v.probabilities[i]!;
    }
    return normalizerUpper > 0 ? Math.min(1, inFamily / normalizerUpper) : 0;
  });
  let pLower = shares.reduce((s, x, mi) => s + views[mi]!.model.weight * x, 0);
  // The geometric pool's normalizer is at most 1 (weighted AM-GM: Σ_G Π s_k(G)^w_k ≤ Σ_k w_k Σ_G s_k(G) = 1),
  // so Π L_k^w_k bounds it from below; whichever pool applies, the smaller bound holds.
  if (pool.geometricBelow !== null) pLower = Math.min(pLower, Math.exp(shares.reduce((s, x, mi) => s + views[mi]!.model.weight * Math.log(x), 0)));
  const e = pool.exponent;
  if (e !== 1 && pLower > 0) {
    const others = e >= 1 ? 1 : Math.max(1, roots.length - 1) ** (1 - e);
    const own = Math.min(1, pLower) ** e;
    pLower = own / (own + others * Math.max(0, 1 - pLower) ** e);
  }
  // A margin for rounding: the full test computes its sums another way.
  return qUpper > 0 ? Math.max(0, Math.min(1, pLower / qUpper) - 1e-9) : 0;
}
