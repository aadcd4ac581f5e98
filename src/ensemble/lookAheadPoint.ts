/**
 * Look-ahead scoring's ensemble points, for the decider: the members as look-ahead scoring sees
 * them (rows past the point reused where the draft or the verification holds them, else a pass
 * that crops the member to the point), the greedy decision (lookAheadScoring.ts) and SAFE's
 * acceptance test over prefix families when sampling (lookAheadSampling.ts).
 * @module
 */
import type { RowScore } from '../member/scores.js';
import { keptProbability } from '../member/truncation.js';
import type { EnsembleDecision } from './aggregate.js';
import { familyRootIndices, lookAheadDecision, type LookAheadModel } from './lookAheadScoring.js';
import { acceptanceLowerBound, drafterWayInto, familyDistribution, familyOfDraft, familyRoots, type FamilyPool } from './lookAheadSampling.js';
import type { Recorder } from './recorder.js';
import { acceptanceTest, ensembleProbabilities, Stream } from './sampling.js';
import { scorePass, type Drafted, type GenerationState, type Member } from './sequence.js';
import type { TraceSampling } from './types.js';
import { EOS_KEY, isBareSpace } from './vocabulary.js';

/** The ensemble distribution and decision at a position. */
export interface EnsemblePoint {
  decision: EnsembleDecision;
  /** Text before the position (union strings are tokenized in it). */
  context: string;
  /** The members' rows, drafter first. */
  scores: RowScore[];
  gac: boolean;
}

/** Where a chunk's ensemble point sits, for look-ahead scoring's reads past it. */
export interface ChunkPosition {
  drafted: readonly Drafted[];
  /** Index of the ensembled token in `drafted`. */
  j: number;
  /** Each verifier's aligned token index. */
  at: readonly number[];
  rowAts: ReadonlyArray<(q: number) => RowScore>;
}

/** The decider's look-ahead points; the moved flags tell it what the last point fed the members. */
export class LookAheadPoints {
  constructor(
    private readonly state: GenerationState,
    private readonly recorder: Recorder,
    /** The first-token ensemble at a position (the decider's). */
    private readonly pointAt: (d: Drafted, verifierRows: RowScore[], text: Uint8Array) => Promise<EnsemblePoint>,
  ) {}

  /** Whether the last look-ahead point fed the drafter past the trigger. */
  drafterMoved = false;
  /** Whether the last look-ahead point fed any member other tokens (its rows past the point are stale). */
  pointMoved = false;

  /**
   * A greedy ensemble point scored by look-ahead (see lookAheadScoring.ts): the first-token
   * union picks the candidates, then each model scores them as whole strings. With
   * `firstToken` (greedy `unionScoring: 'auto'`, at a drafted token no verifier splits), a
   * point whose candidates are all of one granularity — none extends another, so no model's
   * piece is compared against another's whole — is decided by `firstToken` instead. Returns
   * the drafter ids to append, or null when aborted.
   */
  async greedy(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, where: ChunkPosition, firstToken?: (first: EnsemblePoint) => Promise<number[]>): Promise<number[] | null> {
    const { state } = this;
    const o = state.options;
    const first = await this.pointAt(d, verifierRows, text);
    const t0 = performance.now();
    const { keys, average } = first.decision;
    const ranked = [...keys.keys()].sort((a, b) => average[b]! - average[a]! || a - b).slice(0, o.lookAheadCandidates);
    const draftedKey = state.drafter.vocab.key(d.id);
    const candidates = ranked.map((e) => keys[e]!);
    if (!candidates.includes(draftedKey) && keys.includes(draftedKey)) candidates.push(draftedKey);
    if (firstToken && familyRootIndices(candidates).every((root, c) => root === c)) {
      state.stats.time.ensemblingMs += performance.now() - t0;
      return firstToken(first);
    }
    const models = this.lookAheadModels(d, first, where);
    const result = await lookAheadDecision(models, candidates);
    if (!result) return null;
    const stats = state.stats.lookAhead!;
    stats.points++;
    stats.passes += result.passes;
    const appended = result.appended.length > 0 ? result.appended : [d.id];
    state.stats.time.ensemblingMs += performance.now() - t0;
    await this.recorder.record({ d, scores: first.scores, verifierOwn, decision: result.decision, entry: result.decision.winner, appended, gac: false, lookAhead: { passes: result.passes, prefixMass: result.prefixMass } });
    return appended;
  }

  /** The members as look-ahead scoring sees them at the point (drafter first). */
  private lookAheadModels(d: Drafted, first: EnsemblePoint, where: ChunkPosition): LookAheadModel[] {
    const { state } = this;
    const responseStart = d.offset - state.lead === 0;
    const members = [state.drafter, ...state.verifiers];
    return members.map((m, i) => {
      const positions = i === 0 ? this.drafterPosition(where) : this.verifierPosition(where, i - 1);
      return {
        vocab: m.vocab,
        weight: m.weight,
        // A model with no response text before the point tokenizes in its prompt's context: a
        // sentencepiece model would otherwise write a dummy "▁" before a multi-token string there.
        context: (i === 0 ? d.offset === 0 : responseStart) ? m.prompt.context : first.context,
        dummySpace: i > 0 && responseStart && m.addsSpace,
        row: first.scores[i]!,
        wholeRows: m.lm.wholeRows,
        atHand: (path) => positions.atHand(path) || samePath(positions.lastPass?.path, path),
        rowsAfter: async (path) => {
          if (positions.atHand(path)) return { rows: positions.rowsAt(path), ran: false };
          if (samePath(positions.lastPass?.path, path)) return { rows: positions.lastPass!.rows, ran: false };
          positions.moved = true;
          this.pointMoved = true;
          if (i === 0) this.drafterMoved = true;
          const rows = await this.pathPass(m, positions.sequenceAt, path);
          positions.lastPass = rows && { path: [...path], rows };
          return rows && { rows, ran: true };
        },
        // Prefix masses need normalized probabilities: the kept set with its normalizer, even uncut.
        // With temperatureAt 'ensemble' the models are read at temperature 1 and the drafter's
        // draft (q) at the temperature as well.
        ...(state.sampling ? { kept: (row: RowScore) => row.truncated(state.sampling!.memberTruncation) } : {}),
        ...(state.sampling && i === 0 && state.sampling.ensembleExponent !== 1 ? { draftKept: (row: RowScore) => row.truncated(state.sampling!.truncation) } : {}),
      };
    });
  }

  /**
   * SAFE's acceptance test over look-ahead families (sampling; see lookAheadSampling.ts): the
   * draft stands with probability min(1, P_ens(F) / q(F)) for the family F its text falls into,
   * else a family is drawn from the residual and the drafter writes into it. A draft that ends
   * inside a root is extended by the drafter's own draws until its family is known. Returns the
   * ids to commit from the point, or where the accepted family's root ends; null when aborted.
   */
  async acceptance(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, where: ChunkPosition): Promise<{ appended: number[] } | { testedUntil: number } | null> {
    const { state } = this;
    const o = state.options;
    const sampling = state.sampling!;
    const vocab = state.drafter.vocab;
    this.pointMoved = false;
    const pool: FamilyPool = { exponent: sampling.ensembleExponent, geometricBelow: o.familyPool === 'product' ? 1 : o.sharpening.method === 'geometric' ? o.sharpening.below : null };
    const first = await this.pointAt(d, verifierRows, text);
    const t0 = performance.now();
    const { keys, average } = first.decision;
    // The candidates depend on the rows only, never on the draft (the test would be biased).
    const ranked = [...keys.keys()].sort((a, b) => average[b]! - average[a]! || a - b).slice(0, o.lookAheadCandidates);
    // A response does not start with bare whitespace (the chat template's turn has begun): no such family there.
    const responseStart = d.offset - state.lead === 0;
    const candidates = ranked.map((e) => keys[e]!).filter((k) => !(responseStart && isBareSpace(k)));
    const models = this.lookAheadModels(d, first, where);
    // The draft's text from the point, and its family.
    const draft = where.drafted.slice(where.j).map((x) => x.id);
    const eosAt = draft.findIndex((id) => vocab.isEos(id));
    if (eosAt >= 0) draft.length = eosAt + 1;
    const textOf = (ids: readonly number[]) => (ids.length > 0 && vocab.isEos(ids[0]!) ? EOS_KEY : ids.filter((id) => !vocab.isEos(id)).map((id) => vocab.key(id)).join(''));
    const roots = familyRoots(candidates);
    const known = familyOfDraft(roots, textOf(draft), eosAt >= 0);
    if (typeof known === 'number' && known >= 0) {
      // Where the models' best tokens already bound min(1, P_ens(F) / q(F)) above the test's
      // uniform, the draft stands for sure: the same uniform the full test would use.
      const view = async (m: LookAheadModel, keptOf: NonNullable<LookAheadModel['kept']>) => {
        const top = m.row.top(o.unionTopK);
        const kept = await keptOf(m.row);
        return { model: m, ids: top.ids, probabilities: Array.from(top.ids, (id, i) => keptProbability(kept, id, top.logits[i]!)) };
      };
      const views = await Promise.all(models.map((m) => view(m, m.kept!)));
      const drafterView = models[0]!.draftKept ? await view(models[0]!, models[0]!.draftKept) : views[0]!;
      const uniform = sampling.random.uniform(Stream.Accept, state.stats.cycles, d.index);
      const bound = acceptanceLowerBound(views, roots, known, pool, drafterView);
      if (uniform < bound) {
        const counts = state.stats.sampling!;
        counts.tested++;
        counts.accepted++;
        state.stats.ensembledTokens++;
        state.stats.lookAhead!.points++;
        state.stats.lookAhead!.bounded++;
        state.stats.time.ensemblingMs += performance.now() - t0;
        if (o.trace) {
          const acceptance = { draftProbability: NaN, ensembleProbability: NaN, acceptProbability: bound, uniform, accepted: true, bounded: true };
          await this.recorder.record({ d, scores: first.scores, verifierOwn, decision: first.decision, entry: -1, appended: [d.id], gac: false, sampling: { probabilities: ensembleProbabilities(first.decision, sampling.ensembleExponent), acceptance }, lookAhead: { passes: 0, prefixMass: [] } });
        }
        const root = roots[known]!;
        return { testedUntil: root === EOS_KEY ? d.offset + 1 : d.offset + root.length };
      }
    }
    const family = await familyDistribution(models, candidates, pool);
    if (!family) return null;
    let passes = family.scored.passes;
    let drawnAhead = 0;
    let found = familyOfDraft(family.roots, textOf(draft), eosAt >= 0);
    while (found === 'undetermined' && drawnAhead < MAX_DRAWN_AHEAD) {
      const got = await models[0]!.rowsAfter(draft);
      if (!got) return null;
      if (got.ran) passes++;
      const index = d.index + draft.length;
      const next = await got.rows[draft.length - 1]!.draw(sampling.truncation, sampling.random.uniform(Stream.Draft, state.stats.cycles, index));
      draft.push(next.id);
      drawnAhead++;
      found = familyOfDraft(family.roots, textOf(draft), vocab.isEos(next.id));
    }
    const drafted = typeof found === 'number' ? found : -1;
    const acceptUniform = sampling.random.uniform(Stream.Accept, state.stats.cycles, d.index);
    const rejectionUniform = sampling.random.uniform(Stream.Rejection, state.stats.cycles, d.index);
    const qDrafted = drafted >= 0 ? family.q[drafted]! : 1;
    const outcome = acceptanceTest(family.p, family.q, drafted, qDrafted, o.rejectionRule, acceptUniform, rejectionUniform);
    const counts = state.stats.sampling!;
    counts.tested++;
    state.stats.ensembledTokens++;
    if (outcome.accepted) counts.accepted++;
    else counts.rejected++;
    const stats = state.stats.lookAhead!;
    stats.points++;
    stats.passes += passes;
    const entry = outcome.drawn ? outcome.drawn.entry : drafted;
    let appended: number[] | null = null;
    if (!outcome.accepted) {
      const root = family.roots[entry]!;
      const way = root === EOS_KEY ? (vocab.eosId === null ? [] : [vocab.eosId]) : drafterWayInto(family, entry, sampling.random.uniform(Stream.Ensemble, state.stats.cycles, d.index));
      appended = way.length > 0 ? way : vocab.appendIds(root, first.context, false);
      if (appended.length === 0) appended = [d.id];
    } else if (drawnAhead > 0) appended = draft;
    state.stats.time.ensemblingMs += performance.now() - t0;
    if (o.trace) {
      const decision: EnsembleDecision = { keys: family.roots, perModel: family.perModel, average: family.p, scores: family.p, sharpened: family.geometric, winner: entry, bareSpaceGaveWay: null };
      const trace: TraceSampling = {
        probabilities: family.p,
        draftProbabilities: family.q,
        acceptance: { draftProbability: qDrafted, ensembleProbability: drafted >= 0 ? family.p[drafted]! : 0, acceptProbability: outcome.acceptProbability, uniform: acceptUniform, accepted: outcome.accepted },
        ...(outcome.drawn ? { draw: { from: outcome.drawn.from, uniform: rejectionUniform, probability: outcome.drawn.probability } } : {}),
      };
      await this.recorder.record({ d, scores: first.scores, verifierOwn, decision, entry, appended: appended ?? [d.id], gac: false, sampling: trace, lookAhead: { passes, prefixMass: family.scored.masses } });
    }
    if (appended) return { appended };
    const root = family.roots[drafted]!;
    return { testedUntil: root === EOS_KEY ? d.offset + 1 : d.offset + root.length };
  }

  /** The drafter's rows past the trigger: the draft's own where it wrote the path, else a pass. */
  private drafterPosition(where: ChunkPosition): PathRows {
    const { drafted, j } = where;
    const at = drafted[j]!;
    const sequenceAt = this.state.drafter.prompt.ids.length + at.index;
    const rows: PathRows = {
      moved: false,
      lastPass: null,
      sequenceAt,
      atHand: (path) => !rows.moved && path.every((id, i) => drafted[j + i]?.id === id && drafted[j + i + 1] !== undefined),
      rowsAt: (path) => path.map((_, i) => drafted[j + i + 1]!.score),
    };
    return rows;
  }

  /** Verifier vi's rows past its aligned token: its verification's where its tokens are the path, else a pass. */
  private verifierPosition(where: ChunkPosition, vi: number): PathRows {
    const v = this.state.verifiers[vi]!;
    const k = where.at[vi]!;
    const P = v.prompt.ids.length;
    const own = v.tokens!.ids;
    const rows: PathRows = {
      moved: false,
      lastPass: null,
      sequenceAt: P + k,
      atHand: (path) => !rows.moved && path.every((id, i) => own[k + i] === id),
      rowsAt: (path) => path.map((_, i) => where.rowAts[vi]!(P + k + 1 + i)),
    };
    return rows;
  }

  /**
   * Feeds `path` to member m after its first `sequenceAt` tokens (the row predicting that
   * position stays held) and returns the rows after each of its tokens; null when aborted.
   */
  private async pathPass(m: Member, sequenceAt: number, path: readonly number[]): Promise<RowScore[] | null> {
    m.lm.crop(sequenceAt);
    // The cache no longer holds the verified tokenization past the point: the next verification compares it from the start.
    m.lastRow = null;
    m.lastRowAt = -1;
    const t0 = performance.now();
    const scores = await scorePass(this.state, m, [...path], path.length, [...path.slice(1), -1], sequenceAt);
    this.state.stats.time.verifyingMs += performance.now() - t0;
    if (!scores) return null;
    return Array.from({ length: path.length }, (_, i) => scores.at(i));
  }
}

/** Most tokens the drafter draws past its draft to learn which family its text falls into. */
const MAX_DRAWN_AHEAD = 4;

/** A member's rows past an ensemble point (see {@link Decider.lookAheadEnsemble}). */
interface PathRows {
  /** Set once a pass fed the member other tokens: rows at hand are stale from then on. */
  moved: boolean;
  /** The last pass's path and rows (still valid: nothing was fed since). */
  lastPass: { path: number[]; rows: RowScore[] } | null;
  /** Sequence position of the ensemble point (the row there predicts it). */
  sequenceAt: number;
  atHand(path: readonly number[]): boolean;
  rowsAt(path: readonly number[]): RowScore[];
}

function samePath(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return !!a && a.length === b.length && a.every((id, i) => id === b[i]);
}
