/**
 * Look-ahead union scoring: UniTE's union entries compared as whole strings instead of first
 * sub-tokens. UniTE scores a string by each model's first sub-token for it, so a model that
 * writes "37" as one token is compared against another's "3" — different granularities, and
 * the finer model's first piece wins. Here each model's score for a string s is its probability
 * that the text continues with s: the chain rule over its own tokens of s, the last piece's
 * factor summed over every token that starts with it (a prefix mass). Strings that extend one
 * another are then partitioned, so "3" counts only the continuations that start with "3" but
 * with no other candidate ("37"): the candidates become disjoint events, normalized per model
 * and averaged with the models' weights.
 *
 * Approximation (documented in the README): a string's mass follows the model's canonical
 * tokenization of it; other splits of the same bytes are not summed, and a served member's last
 * factor sees only the top-k its server returned (a lower bound).
 * @module
 */
import type { EnsembleDecision } from './aggregate.js';
import { prefixMasses, type LookAheadModel, type Range } from './prefixMass.js';
import { EOS_KEY } from './vocabulary.js';

export type { LookAheadModel } from './prefixMass.js';

/** What look-ahead scoring decided. */
export interface LookAheadDecision {
  /** The decision over the candidates (`perModel`: each model's share of each candidate's exclusive event). */
  decision: EnsembleDecision;
  /** Per model, each candidate's prefix mass before the partition. */
  prefixMass: Float64Array[];
  /** The drafter ids that commit the winner: its tokens of the winning string, the last being its best token of the winning event. */
  appended: number[];
  /** Forward passes run (over all models). */
  passes: number;
}

/** How a refinement scores the strings inside a winning family (see {@link lookAheadDecision}). */
interface Refinement {
  /** Per model, the first stage's normalizer: sub-events keep their joint probability, so a model that gave the family little mass does not gain weight inside it. */
  normalizers: readonly number[];
}

/**
 * Scores `candidates` (union keys, distinct) as whole strings for every model (drafter at
 * index 0) and decides. `refine`: whether to refine inside the winning event. Null when aborted.
 */
export async function lookAheadDecision(models: readonly LookAheadModel[], candidates: readonly string[], refine = true): Promise<LookAheadDecision | null> {
  return decideStrings(models, candidates, refine ? 'refine' : null);
}

async function decideStrings(models: readonly LookAheadModel[], candidates: readonly string[], stage: 'refine' | Refinement | null): Promise<LookAheadDecision | null> {
  const n = candidates.length;
  const children = nearestExtensions(candidates);
  const scored = await prefixMasses(models, candidates);
  if (!scored) return null;
  let { passes } = scored;
  const { masses: prefixMass, ranges: modelRanges, plans: modelPlans } = scored;
  const refinement = stage !== null && stage !== 'refine' ? stage : null;
  const normalizers: number[] = [];
  const perModel = prefixMass.map((mass, mi) => {
    const exclusive = Float64Array.from(mass, (x, c) => Math.max(0, x - children[c]!.reduce((s, e) => s + mass[e]!, 0)));
    const total = refinement ? refinement.normalizers[mi]! : exclusive.reduce((s, x) => s + x, 0);
    normalizers.push(total);
    return total > 0 ? exclusive.map((x) => x / total) : exclusive.fill(0);
  });
  const average = new Float64Array(n);
  // Inside a family, a model that would be inside one of its own tokens after the root has no
  // say on what follows it there (SAFE's stability gate asks no model mid-token either).
  const voters = refinement ? boundaryVoters(models, candidates, modelPlans) : null;
  perModel.forEach((p, mi) => p.forEach((x, c) => (average[c]! += (voters ? voters[mi]! : models[mi]!.weight) * x)));
  let winner = 0;
  if (stage === 'refine') {
    // First the family: a root (a candidate no other candidate is a prefix of) with every
    // candidate that extends it, scored by the root's whole prefix mass. Deciding among
    // exclusive events directly would split a family's mass over its members ("3", "37", "39")
    // while a rival family ("4") listed by its root alone keeps all of its own.
    const family = new Float64Array(n);
    const rootOf = familyRootIndices(candidates);
    rootOf.forEach((r, c) => (family[r]! += average[c]!));
    for (let c = 1; c < n; c++) if (family[c]! > family[winner]!) winner = c;
  } else {
    // Inside a family, a string with listed extensions stands for "it, then none of those",
    // which pools every unlisted continuation. It can win only where the drafter writes exactly
    // it there (a model that writes digit by digit commits "4" and the next position decides
    // the next digit); a coarse drafter would commit one of its other whole numbers ("59" in
    // the event "5, not 55 or 56"), a string nobody scored. Its concrete continuations were
    // added to the candidates for this reason.
    const drafterWritesExactly = (c: number) => stringsInEvent(models[0]!, candidates, c, children[c]!, modelPlans[0]![c]?.path ?? [], modelRanges[0]![c] ?? null)[0]?.text === candidates[c];
    const eligible = (c: number) => refinement === null || children[c]!.length === 0 || drafterWritesExactly(c);
    winner = -1;
    for (let c = 0; c < n; c++) if (eligible(c) && (winner < 0 || average[c]! > average[winner]!)) winner = c;
  }
  const decision: EnsembleDecision = { keys: [...candidates], perModel, average, scores: average, sharpened: false, winner, bareSpaceGaveWay: null };
  const drafter = models[0]!;
  const w = candidates[winner]!;
  const excluded = children[winner]!;
  const inEvent = (mi: number) => stringsInEvent(models[mi]!, candidates, winner, excluded, modelPlans[mi]![winner]?.path ?? [], modelRanges[mi]![winner] ?? null);
  const drafterWays = inEvent(0);
  if (stage === 'refine' && w !== EOS_KEY) {
    // Then the string inside the winning family: its members, and where the models would write
    // more than the root there ("39" in the family "3" when only "37" is listed), their longer
    // strings — each model's likeliest strings in the root's own event, and for one that ends a
    // token at the root its likeliest next token after it. One refinement, among the strings no
    // other candidate extends (see the eligibility rule above).
    const members = candidates.flatMap((c, i) => (i !== winner && c !== EOS_KEY && c.startsWith(w) ? [c] : []));
    const strings = new Set<string>();
    for (let mi = 0; mi < models.length; mi++) {
      const ways = mi === 0 ? drafterWays : inEvent(mi);
      for (const x of ways.slice(0, 2)) if (x.text !== w) strings.add(x.text);
      const exact = ways.slice(0, 2).find((x) => x.text === w);
      if (exact && models[mi]!.wholeRows) {
        const got = await models[mi]!.rowsAfter(exact.ids);
        if (!got) return null;
        if (got.ran) passes++;
        const next = got.rows[exact.ids.length - 1]!.best;
        const vocab = models[mi]!.vocab;
        const text = vocab.isEos(next) ? '' : w + vocab.key(next);
        if (text !== '' && !excluded.some((e) => text.startsWith(candidates[e]!))) strings.add(text);
      }
    }
    const finer = [...strings].slice(0, REFINED_STRINGS);
    if (finer.length > 0 || members.length > 0) {
      // Scored with this stage's normalizers: each sub-event's score is its share of the
      // ensemble's whole distribution, not of the family (a model that barely believed in the
      // family would otherwise decide inside it as loudly as one sure of it).
      const refined = await decideStrings(models, [w, ...members, ...finer], { normalizers });
      if (!refined) return null;
      return { ...refined, passes: passes + refined.passes };
    }
  }
  const appended = drafterWays.length > 0 ? drafterWays[0]!.ids : w === EOS_KEY ? (drafter.vocab.eosId === null ? [] : [drafter.vocab.eosId]) : drafter.vocab.tokenize(w, drafter.context);
  return { decision, prefixMass, appended, passes };
}

/**
 * Inside a family (candidates[0] the root): the models that write its longer members with a
 * token boundary at the root's end, weighted; the others are inside one of their tokens there.
 */
function boundaryVoters(models: readonly LookAheadModel[], candidates: readonly string[], plans: ReadonlyArray<ReadonlyArray<{ path: number[] } | null>>): number[] | null {
  const root = candidates[0]!;
  const atBoundary = models.map((m, mi) => candidates.every((c, ci) => {
    const plan = plans[mi]![ci];
    if (ci === 0 || c === EOS_KEY || !plan || c.length <= root.length) return true;
    let end = 0;
    for (const [i, id] of plan.path.entries()) {
      const key = m.vocab.key(id);
      // A dummy-prefix space in front is not part of the strings (see planOf).
      end += i === 0 && m.dummySpace && key.charCodeAt(0) === 0x20 ? key.length - 1 : key.length;
      if (end === root.length) return true;
    }
    return false;
  }));
  if (atBoundary.every(Boolean) || !atBoundary.some(Boolean)) return null;
  const total = models.reduce((s, m, mi) => s + (atBoundary[mi] ? m.weight : 0), 0);
  return models.map((m, mi) => (atBoundary[mi] ? m.weight / total : 0));
}

/** For each candidate, the index of its family's root: the shortest candidate it starts with (end-of-sequence is its own). */
export function familyRootIndices(candidates: readonly string[]): number[] {
  return candidates.map((c, i) => {
    if (c === EOS_KEY) return i;
    let root = i;
    candidates.forEach((o, j) => {
      if (o !== EOS_KEY && o.length < candidates[root]!.length && c.startsWith(o)) root = j;
    });
    return root;
  });
}

/** Most strings of the models in a winning event a refinement scores. */
const REFINED_STRINGS = 6;

/**
 * For each candidate, the candidates that extend it with no candidate in between ("3" → "37",
 * not "375" when "37" is one): subtracting their masses leaves the continuations that start
 * with the candidate and with none of them. End-of-sequence extends nothing.
 */
export function nearestExtensions(candidates: readonly string[]): number[][] {
  const extends_ = (e: string, c: string) => e !== c && c !== EOS_KEY && e !== EOS_KEY && e.startsWith(c);
  return candidates.map((c) => {
    const longer = candidates.map((e, i) => (extends_(e, c) ? i : -1)).filter((i) => i >= 0);
    return longer.filter((e) => !longer.some((f) => f !== e && extends_(candidates[e]!, candidates[f]!)));
  });
}

/**
 * A model's ways to write the winning event, most likely first (a few): its path, then one
 * token that begins with the last piece but not with an excluded extension. A drafter that
 * writes whole numbers thus commits "39" in the event "3, not 37" rather than a bare "3" it
 * would end the number after.
 */
function stringsInEvent(m: LookAheadModel, candidates: readonly string[], winner: number, excluded: readonly number[], path: readonly number[], range: Range | null): Array<{ text: string; ids: number[] }> {
  const w = candidates[winner]!;
  if (w === EOS_KEY || !range) return [];
  const pathText = path.map((id) => m.vocab.key(id)).join('');
  const out: Array<{ text: string; ids: number[] }> = [];
  const seen = new Set<string>();
  for (const id of range.ids) {
    let text = pathText + m.vocab.key(id);
    if (m.dummySpace && path.length === 0 && text.charCodeAt(0) === 0x20) text = text.slice(1);
    if (seen.has(text) || excluded.some((e) => text.startsWith(candidates[e]!))) continue;
    seen.add(text);
    out.push({ text, ids: [...path, id] });
    if (out.length > REFINED_STRINGS) break;
  }
  return out;
}
