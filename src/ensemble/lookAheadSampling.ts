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
import type { LookAheadModel, PrefixMasses } from './lookAheadScoring.js';
import { planOf, prefixMasses } from './lookAheadScoring.js';
import { drawIndex } from './sampling.js';
import { EOS_KEY } from './vocabulary.js';

/** The family distribution at an ensemble point. */
export interface FamilyDistribution {
  /** The roots (union keys), in the candidates' order. */
  roots: string[];
  /** Per model, its share of each family (normalized over the roots). */
  perModel: Float64Array[];
  /** P_ens over the families: the weighted mean of {@link perModel}. */
  p: Float64Array;
  /** The drafter's probability of each family (its prefix mass of the root; not normalized: the rest is outside every family). */
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

/** Scores the families of `candidates` for every model (drafter first). Null when aborted. */
export async function familyDistribution(models: readonly LookAheadModel[], candidates: readonly string[]): Promise<FamilyDistribution | null> {
  const roots = familyRoots(candidates);
  const scored = await prefixMasses(models, roots);
  if (!scored) return null;
  const perModel = scored.masses.map((mass) => {
    const total = mass.reduce((s, x) => s + x, 0);
    return total > 0 ? mass.map((x) => x / total) : new Float64Array(mass.length);
  });
  const p = new Float64Array(roots.length);
  perModel.forEach((share, mi) => share.forEach((x, r) => (p[r]! += models[mi]!.weight * x)));
  // A model with no mass on any root has no say: the others' shares are renormalized.
  const total = p.reduce((s, x) => s + x, 0);
  if (total > 0 && Math.abs(total - 1) > 1e-12) p.forEach((x, r) => (p[r] = x / total));
  return { roots, perModel, p, q: Float64Array.from(scored.masses[0]!), scored };
}

/**
 * The drafter's ids that write family `r` after a rejection: its tokens of the root before the
 * last piece, then one token drawn (with `uniform`) from its likeliest tokens starting with that
 * piece, in proportion to their probabilities. Empty when it cannot write the root.
 */
export function drafterWayInto(family: FamilyDistribution, r: number, uniform: number): number[] {
  const plan = family.scored.plans[0]![r];
  const range = family.scored.ranges[0]![r];
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
 * the whole rows need not be read (exact: the full test would accept with that uniform too). A lower bound of
 * P_ens(F): each model's best tokens starting with the root (where it writes the root as one
 * token), divided by an upper bound of its normalizer (1 minus its best tokens that start no
 * family); an upper bound of q(F): 1 minus the drafter's best tokens that can start no draft in F.
 */
export function acceptanceLowerBound(views: readonly TopView[], roots: readonly string[], r: number): number {
  const root = roots[r]!;
  const keyOf = (v: TopView, id: number) => (v.model.vocab.isEos(id) ? EOS_KEY : v.model.vocab.key(id));
  const related = (key: string, rootKey: string) => (key === EOS_KEY || rootKey === EOS_KEY ? key === rootKey : key.startsWith(rootKey) || rootKey.startsWith(key));
  const drafter = views[0]!;
  let qUpper = 1;
  for (let i = 0; i < drafter.ids.length; i++) if (!related(keyOf(drafter, drafter.ids[i]!), root)) qUpper -= drafter.probabilities[i]!;
  let pLower = 0;
  for (const v of views) {
    // A model that writes the root in more tokens (or at a dummy-space start) counts nothing here.
    if (v.model.dummySpace) continue;
    const plan = planOf(v.model, root);
    if (!plan || plan.path.length > 0) continue;
    let inFamily = 0;
    let normalizerUpper = 1;
    for (let i = 0; i < v.ids.length; i++) {
      const key = keyOf(v, v.ids[i]!);
      if (root === EOS_KEY ? key === EOS_KEY : key !== EOS_KEY && key.startsWith(root)) inFamily += v.probabilities[i]!;
      if (!roots.some((x) => related(key, x))) normalizerUpper -= v.probabilities[i]!;
    }
    if (normalizerUpper > 0) pLower += v.model.weight * Math.min(1, inFamily / normalizerUpper);
  }
  // A margin for rounding: the full test computes its sums another way.
  return qUpper > 0 ? Math.max(0, Math.min(1, pLower / qUpper) - 1e-9) : 0;
}
