/**
 * Prefix masses for look-ahead scoring: each model's probability that the text continues with
 * a string — the chain rule over its own tokens of the string, the last piece's factor summed
 * over every token that starts with it. Shared by the greedy decision (lookAheadScoring.ts) and
 * the sampled families (lookAheadSampling.ts).
 * @module
 */
import type { RowScore } from '../member/scores.js';
import { keptProbability, type KeptSet } from '../member/truncation.js';
import type { EncodingContext } from '../text/continuation.js';
import { EOS_KEY, type Vocabulary } from './vocabulary.js';

/** One model as look-ahead scoring sees it at an ensemble point. */
export interface LookAheadModel {
  vocab: Vocabulary;
  /** Normalized weight. */
  weight: number;
  /** Text before the position (strings are tokenized in it); where the model has written nothing yet, its prompt's context. */
  context: string | EncodingContext;
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
  /**
   * When this model drafts at another temperature than the ensemble reads it at (`temperatureAt:
   * 'ensemble'`): its draft's kept set. Its masses are then also read under it.
   */
  draftKept?: (row: RowScore) => Promise<KeptSet>;
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
  /** Per model with a {@link LookAheadModel.draftKept}: its masses and ranges under it (else null). */
  atDraft: Array<{ masses: Float64Array; ranges: Array<Range | null> } | null>;
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
  const atDraft: Array<{ masses: Float64Array; ranges: Array<Range | null> } | null> = models.map(() => null);
  const masses = await Promise.all(models.map(async (m, mi) => {
    const own = candidates.map((c) => planOf(m, c));
    // What the masses are read under: the model's kept distribution, and its draft's as well
    // where that differs (the same rows, read twice: no extra pass).
    const readings = m.draftKept ? [m.kept, m.draftKept] : [m.kept];
    const mass = readings.map(() => new Float64Array(n));
    const found: Array<Array<Range | null>> = readings.map(() => candidates.map(() => null));
    // Candidates grouped by path; those whose rows are at hand first (a pass may invalidate them).
    const groups = new Map<string, number[]>();
    own.forEach((p, c) => {
      if (!p) return;
      const key = p.path.join(',');
      groups.set(key, [...(groups.get(key) ?? []), c]);
    });
    // A local row is read whole once (one round trip to its worker); every read after it is local.
    if (m.wholeRows) await m.row.row();
    const p0 = await Promise.all(readings.map((kept) => probabilities(kept, m.row)));
    const order = [...groups.values()].map((members) => ({ members, path: own[members[0]!]!.path }));
    const cost = (p: number[]) => (p.length === 0 ? 0 : m.atHand(p) ? 1 : 2);
    order.sort((a, b) => cost(a.path) - cost(b.path));
    for (const { members, path } of order) {
      let rows: RowScore[] = [];
      if (path.length > 0) {
        const got = await m.rowsAfter(path);
        if (!got) return null;
        rows = got.rows;
        if (got.ran) passes++;
        if (m.wholeRows) await Promise.all(rows.map((r) => r.row()));
      }
      const at = path.length === 0 ? m.row : rows[path.length - 1]!;
      for (const [ri, kept] of readings.entries()) {
        let chain = 1;
        if (path.length > 0) {
          chain = p0[ri]!(path[0]!, await m.row.logitOf(path[0]!));
          for (let i = 1; i < path.length && chain > 0; i++) chain *= (await probabilities(kept, rows[i - 1]!))(path[i]!, await rows[i - 1]!.logitOf(path[i]!));
        }
        const pAt = path.length === 0 ? p0[ri]! : await probabilities(kept, at);
        for (const c of members) {
          const range = await rangeOf(m, at, own[c]!, pAt);
          found[ri]![c] = range;
          mass[ri]![c] = chain * range.mass;
        }
      }
    }
    ranges[mi] = found[0]!;
    plans[mi] = own;
    if (readings.length > 1) atDraft[mi] = { masses: mass[1]!, ranges: found[1]! };
    return mass[0]!;
  }));
  if (masses.some((m) => m === null)) return null;
  return { masses: masses as Float64Array[], ranges, plans, passes, atDraft };
}

/** A token's probability in a row (its id and logit): the model's kept distribution, or the softmax. */
type TokenProbability = (id: number, logit: number) => number;

async function probabilities(keptOf: LookAheadModel['kept'], row: RowScore): Promise<TokenProbability> {
  if (keptOf) {
    const kept = await keptOf(row);
    return (id, logit) => keptProbability(kept, id, logit);
  }
  const lse = await row.logNormalizer();
  return (_id, logit) => Math.exp(logit - lse);
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

