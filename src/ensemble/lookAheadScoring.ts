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
import type { RowScore } from '../member/scores.js';
import { keptProbability, type KeptSet } from '../member/truncation.js';
import type { EnsembleDecision } from './aggregate.js';
import { EOS_KEY, type Vocabulary } from './vocabulary.js';

/** One model as look-ahead scoring sees it at an ensemble point. */
export interface LookAheadModel {
  vocab: Vocabulary;
  /** Normalized weight. */
  weight: number;
  /** Text before the position (strings are tokenized in it). */
  context: string;
  /** At the response start of a model that writes a dummy-prefix space: its first token counts without it (see UnionMember). */
  dummySpace: boolean;
  /** The model's row at the ensemble position. */
  row: RowScore;
  /** Whether whole rows can be read (local members); a served member's rows are known through their top-k only. */
  wholeRows: boolean;
  /**
   * Rows after `path` (this model's tokens, written at the ensemble position): element i
   * predicts the token after path[0..i]. Rows at hand are reused; otherwise one pass runs, and
   * rows from an earlier call may no longer be read. `ran` says whether a pass ran. Null when
   * aborted.
   */
  rowsAfter(path: readonly number[]): Promise<{ rows: RowScore[]; ran: boolean } | null>;
  /** Whether {@link rowsAfter} has the rows for `path` at hand (no pass) as things stand. */
  atHand(path: readonly number[]): boolean;
  /** When sampling: the kept set (temperature, top-k/p) of one of this model's rows; probabilities are then read under it. */
  kept?: (row: RowScore) => Promise<KeptSet>;
}

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

/** A candidate as one model writes it: tokens before the last piece, and the last piece. */
export interface Plan {
  path: number[];
  /** The last piece's bytes: the factor at the row after `path` sums tokens starting with them. */
  last: string;
  /** Whether the last piece sits at the response start of a dummy-space model (tokens with the space count too). */
  atDummySpace: boolean;
}

/** The tokens of a row that begin with a piece: their total probability and the likeliest few. */
export interface Range {
  /** Σ P(token) over the range. */
  mass: number;
  /** The range's best ids (at most RANGE_BEST), likeliest first (ties: lower id first), with their logits. */
  ids: number[];
  logits: number[];
  /** The best ids' probabilities (under the model's kept distribution when sampling). */
  probabilities: number[];
}

/** Best tokens of a range kept for choosing the drafter's tokens in the winning event. */
const RANGE_BEST = 16;

/** Above this many ids a range is summed from the whole row rather than read id by id. */
const WHOLE_ROW_READ = 4096;

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
  perModel.forEach((p, mi) => p.forEach((x, c) => (average[c]! += models[mi]!.weight * x)));
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

/** Each model's prefix mass of each candidate, with what the scoring read on the way. */
export interface PrefixMasses {
  /** Per model, per candidate: the probability that the text continues with the candidate's bytes. */
  masses: Float64Array[];
  /** Per model, per candidate: the range of tokens its last piece's factor summed (null: it cannot write it). */
  ranges: Array<Array<Range | null>>;
  /** Per model, per candidate: how it writes it. */
  plans: Array<Array<Plan | null>>;
  /** Forward passes run (over all models). */
  passes: number;
}

/**
 * Every model's prefix mass of every candidate: the chain rule over its tokens of the string,
 * the last factor summed over the tokens starting with the last piece. Probabilities are a
 * model's {@link LookAheadModel.kept} distribution when it has one (sampling), else its row's
 * softmax. Null when aborted.
 */
export async function prefixMasses(models: readonly LookAheadModel[], candidates: readonly string[]): Promise<PrefixMasses | null> {
  const n = candidates.length;
  let passes = 0;
  const ranges: Array<Array<Range | null>> = models.map(() => []);
  const plans: Array<Array<Plan | null>> = models.map(() => []);
  const masses = await Promise.all(models.map(async (m, mi) => {
    const own = candidates.map((c) => planOf(m, c));
    const mass = new Float64Array(n);
    const found: Array<Range | null> = candidates.map(() => null);
    // Candidates grouped by path; those whose rows are at hand first (a pass may invalidate them).
    const groups = new Map<string, number[]>();
    own.forEach((p, c) => {
      if (!p) return;
      const key = p.path.join(',');
      groups.set(key, [...(groups.get(key) ?? []), c]);
    });
    // A local row is read whole once (one round trip to its worker); every read after it is local.
    if (m.wholeRows) await m.row.row();
    const p0 = await probabilities(m, m.row);
    const order = [...groups.values()].map((members) => ({ members, path: own[members[0]!]!.path }));
    const cost = (p: number[]) => (p.length === 0 ? 0 : m.atHand(p) ? 1 : 2);
    order.sort((a, b) => cost(a.path) - cost(b.path));
    for (const { members, path } of order) {
      let rows: RowScore[] = [];
      let chain = 1;
      if (path.length > 0) {
        const got = await m.rowsAfter(path);
        if (!got) return null;
        rows = got.rows;
        if (got.ran) passes++;
        if (m.wholeRows) await Promise.all(rows.map((r) => r.row()));
        chain = p0(path[0]!, await m.row.logitOf(path[0]!));
        for (let i = 1; i < path.length && chain > 0; i++) chain *= (await probabilities(m, rows[i - 1]!))(path[i]!, await rows[i - 1]!.logitOf(path[i]!));
      }
      const at = path.length === 0 ? m.row : rows[path.length - 1]!;
      const pAt = path.length === 0 ? p0 : await probabilities(m, at);
      for (const c of members) {
        const range = await rangeOf(m, at, own[c]!, pAt);
        found[c] = range;
        mass[c] = chain * range.mass;
      }
    }
    ranges[mi] = found;
    plans[mi] = own;
    return mass;
  }));
  if (masses.some((m) => m === null)) return null;
  return { masses: masses as Float64Array[], ranges, plans, passes };
}

/** A token's probability in a row (its id and logit): the model's kept distribution, or the softmax. */
type TokenProbability = (id: number, logit: number) => number;

async function probabilities(m: LookAheadModel, row: RowScore): Promise<TokenProbability> {
  if (m.kept) {
    const kept = await m.kept(row);
    return (id, logit) => keptProbability(kept, id, logit);
  }
  const lse = await row.logNormalizer();
  return (_id, logit) => Math.exp(logit - lse);
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

/** How model `m` writes candidate `c` at the position; null when it cannot. */
export function planOf(m: Pick<LookAheadModel, 'vocab' | 'context' | 'dummySpace'>, c: string): Plan | null {
  if (c === EOS_KEY) return m.vocab.eosId === null ? null : { path: [], last: EOS_KEY, atDummySpace: false };
  const ids = m.vocab.tokenize(c, m.context);
  const pieces = ids.map((id, i) => {
    const key = m.vocab.key(id);
    return i === 0 && m.dummySpace && key.charCodeAt(0) === 0x20 ? key.slice(1) : key;
  });
  // A bare dummy space in front counts as nothing (it is not part of the response).
  while (pieces.length > 1 && pieces[0] === '') {
    pieces.shift();
    ids.shift();
  }
  if (ids.length > 0 && pieces.join('') === c && pieces.every((p) => p !== '' && p !== EOS_KEY)) {
    return { path: ids.slice(0, -1), last: pieces[pieces.length - 1]!, atDummySpace: m.dummySpace && ids.length === 1 };
  }
  // Bytes that are no text of their own (a partial character): the vocabulary's own token, if any.
  if (m.vocab.idOf(c) !== null || (m.dummySpace && m.vocab.idOf(` ${c}`) !== null)) return { path: [], last: c, atDummySpace: m.dummySpace };
  return null;
}

/** The tokens of `row` (log-normalizer `lse`) that begin with the plan's last piece. */
async function rangeOf(m: LookAheadModel, row: RowScore, plan: Plan, probability: TokenProbability): Promise<Range> {
  const { vocab } = m;
  const best = new RangeBest(probability);
  if (!m.wholeRows) {
    // A served row is known through its top-k: the tokens there that begin with the piece.
    const top = row.top();
    for (let i = 0; i < top.ids.length; i++) if (startsWithPiece(vocab, top.ids[i]!, plan)) best.add(top.ids[i]!, top.logits[i]!);
    return best.range();
  }
  const parts = [vocab.idsStartingWith(plan.last)];
  if (plan.atDummySpace && plan.last !== EOS_KEY) parts.push(vocab.idsStartingWith(` ${plan.last}`));
  const count = parts.reduce((s, p) => s + p.length, 0);
  if (count > WHOLE_ROW_READ) {
    const whole = await row.row();
    for (const part of parts) for (const id of part) if (id < whole.length) best.add(id, whole[id]!);
    return best.range();
  }
  const ids = parts.flatMap((part) => Array.from(part)).filter((id) => id < row.width);
  const logits = await row.logitsOf(ids);
  ids.forEach((id, i) => best.add(id, logits[i]!));
  return best.range();
}

/** Accumulates a range: the sum of its tokens' probabilities and the best few ids. */
class RangeBest {
  private ids: number[] = [];
  private logits: number[] = [];
  private probabilities: number[] = [];
  private sum = 0;

  constructor(private readonly probability: TokenProbability) {}

  add(id: number, logit: number): void {
    if (logit === -Infinity || Number.isNaN(logit)) return;
    const p = this.probability(id, logit);
    if (!(p > 0)) return;
    this.sum += p;
    if (this.ids.length === RANGE_BEST && !(logit > this.logits[RANGE_BEST - 1]! || (logit === this.logits[RANGE_BEST - 1]! && id < this.ids[RANGE_BEST - 1]!))) return;
    let at = this.ids.length;
    while (at > 0 && (logit > this.logits[at - 1]! || (logit === this.logits[at - 1]! && id < this.ids[at - 1]!))) at--;
    this.ids.splice(at, 0, id);
    this.logits.splice(at, 0, logit);
    this.probabilities.splice(at, 0, p);
    if (this.ids.length > RANGE_BEST) {
      this.ids.pop();
      this.logits.pop();
      this.probabilities.pop();
    }
  }

  range(): Range {
    return { mass: this.sum, ids: this.ids, logits: this.logits, probabilities: this.probabilities };
  }
}

function startsWithPiece(vocab: Vocabulary, id: number, plan: Plan): boolean {
  if (plan.last === EOS_KEY) return vocab.isEos(id);
  if (vocab.isEos(id)) return false;
  const key = vocab.key(id);
  return key.startsWith(plan.last) || (plan.atDummySpace && key.startsWith(` ${plan.last}`));
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
