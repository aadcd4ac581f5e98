/**
 * The decider: where SAFE decides. Scans a verified chunk for the first stable position the
 * models contest (step 4: the stability gate, rule (a) unanimity and rule (b) consensus, GaC's
 * drafter gate), builds the ensemble there (steps 5–6: UniTE or GaC, sharpening) and picks the
 * token to commit — the greedy winner, or when sampling SAFE's acceptance test with its
 * rejection draw, or a draw from the ensemble for the per-token strategies.
 * @module
 */
import type { RowScore } from '../member/scores.js';
import { keptProbability, type KeptSet } from '../member/truncation.js';
import { decide, finishUnite, planUnite, topKeys, truncatedRow, type EnsembleDecision, type EnsembleDistribution, type GacUnion, type ModelView, type UnionMember } from './aggregate.js';
import { consensusSkip } from './gates.js';
import { lookAheadDecision, type LookAheadModel } from './lookAheadScoring.js';
import { drafterWayInto, familyDistribution, familyOfDraft, familyRoots, acceptanceLowerBound } from './lookAheadSampling.js';
import type { Recorder } from './recorder.js';
import { acceptanceTest, drawIndex, ensembleProbabilities, Stream, type AcceptanceOutcome } from './sampling.js';
import type { VerifierScorer } from './scorer.js';
import { contextBefore, firstTokenAtOrAfter, probabilityOf, scorePass, type Drafted, type GenerationState, type Member } from './sequence.js';
import type { TraceSampling } from './types.js';
import { EOS_KEY, type Vocabulary } from './vocabulary.js';

/** The ensemble distribution and decision at a position. */
interface EnsemblePoint {
  decision: EnsembleDecision;
  /** Text before the position (union strings are tokenized in it). */
  context: string;
  /** The members' rows, drafter first. */
  scores: RowScore[];
  gac: boolean;
}

/** Where a verified chunk is decided: the first position that is ensembled, or none. */
export interface ChunkDecision {
  /** Index of the drafted token that was ensembled (-1: the chunk stands whole). */
  trigger: number;
  /** The drafter ids committed in place of the drafted token at the trigger. */
  appended: number[];
  /**
   * Whether look-ahead scoring fed the drafter other tokens after the trigger: its cache no
   * longer holds the draft past it (nothing drafted there may be carried).
   */
  drafterCacheMoved: boolean;
}

/** Where a chunk's ensemble point sits, for look-ahead scoring's reads past it. */
interface ChunkPosition {
  drafted: readonly Drafted[];
  /** Index of the ensembled token in `drafted`. */
  j: number;
  /** Each verifier's aligned token index. */
  at: readonly number[];
  rowAts: ReadonlyArray<(q: number) => RowScore>;
}

export class Decider {
  constructor(
    private readonly state: GenerationState,
    private readonly scorer: VerifierScorer,
    private readonly recorder: Recorder,
    private readonly gacUnion: () => GacUnion,
  ) {}

  /**
   * Scans `drafted` in order for the earliest stable position the models contest and decides
   * it. `rowAts[vi](q)` is verifier vi's row for sequence position q; `candidate` the drafter's
   * text with the chunk, `response` the same without the drafter's lead.
   */
  async decideChunk(drafted: readonly Drafted[], rowAts: Array<(q: number) => RowScore>, candidate: Uint8Array, response: Uint8Array): Promise<ChunkDecision> {
    const { state, scorer } = this;
    const o = state.options;
    const { drafter, verifiers } = state;
    this.drafterMoved = false;
    const gac = o.baseEnsembler === 'gac';
    const lookAheadUnion = o.unionScoring === 'look-ahead' && !gac && !state.constraint;
    const lookAhead = lookAheadUnion && !state.sampling;
    // Sampling with look-ahead: a family accepted at a point covers the positions inside its root.
    let testedUntil = -1;
    let t1 = performance.now();
    for (let j = 0; j < drafted.length; j++) {
      const d = drafted[j]!;
      if (d.offset < testedUntil) continue;
      const eos = drafter.vocab.isEos(d.id);
      // The token that carries the drafter's dummy-prefix space has no counterpart in the
      // verifiers' texts (they start after it): it stands as drafted.
      if (state.lead > 0 && d.offset === 0) continue;
      const offset = d.offset - state.lead;
      const at = scorer.alignAt(offset, eos, response);
      if (!at) continue; // unstable: a verifier has no token boundary here
      const rows = await Promise.all(at.map((k, vi) => scorer.rowFor(vi, rowAts[vi]!, k, response, offset)));
      const ownIds = at.map((k, vi) => (eos ? verifiers[vi]!.vocab.eosId! : verifiers[vi]!.tokens!.ids[k]!));
      if (state.sampling) {
        // Sampling: the gates that skip by agreement give way to the acceptance test, which runs
        // at every stable position (skipping one would bias the committed tokens).
        state.stats.time.tokenizingMs += performance.now() - t1;
        if (lookAheadUnion) {
          const outcome = await this.familyAcceptanceAt(d, rows, ownIds, candidate, { drafted, j, at, rowAts });
          t1 = performance.now();
          if (outcome === null) return { trigger: j, appended: [], drafterCacheMoved: this.drafterMoved };
          if ('appended' in outcome) return { trigger: j, appended: outcome.appended, drafterCacheMoved: this.drafterMoved };
          testedUntil = outcome.testedUntil;
          // A pass fed a member other tokens: the rows of the positions after are gone. The
          // chunk stands through the accepted root; the next cycle verifies on from there.
          if (this.pointMoved) {
            const next = drafted.findIndex((x) => x.offset >= testedUntil);
            return { trigger: next < 0 ? drafted.length : next, appended: [], drafterCacheMoved: this.drafterMoved };
          }
          continue;
        }
        const appended = await this.acceptanceAt(d, rows, ownIds, candidate, o.baseEnsembler === 'gac');
        t1 = performance.now();
        if (appended !== null) return { trigger: j, appended, drafterCacheMoved: false };
        continue;
      }
      // With look-ahead scoring the gates read the drafted token at its own granularity too: a
      // verifier agrees with "36" when it would write both of its tokens "3" and "6".
      const spans = lookAhead ? at.map((k, vi) => this.coveringTokens(vi, k, eos ? offset : offset + drafter.lm.tokenizer.tokenBytes(d.id).length)) : null;
      const argmaxIsOwn = rows.map((r, vi) => sameChoice(verifiers[vi]!.vocab, r.best, ownIds[vi]!) && (!spans || this.agreesAlong(vi, rowAts[vi]!, at[vi]!, spans[vi]!)));
      // Rule (a) needs only argmaxes; probabilities (normalizers: a pass of exponentials over
      // each row, where the row is held) only when it fails.
      if (o.unanimitySkip && argmaxIsOwn.every(Boolean)) continue;
      const ownProbabilities = await Promise.all([
        probabilityOf(d.score, d.id),
        ...rows.map(async (r, vi) => (await probabilityOf(r, ownIds[vi]!)) * (spans ? await this.chainAlong(vi, rowAts[vi]!, at[vi]!, spans[vi]!) : 1)),
      ]);
      const weights = [drafter.weight, ...verifiers.map((v) => v.weight)];
      if (consensusSkip({ ownProbabilities, verifierArgmaxIsOwn: argmaxIsOwn, weights }, { threshold: o.consensusThreshold, unanimity: false })) continue;
      if (o.baseEnsembler === 'gac' && ownProbabilities[0]! >= o.gacDrafterGate) continue;
      state.stats.time.tokenizingMs += performance.now() - t1;
      const appended = lookAhead ? await this.lookAheadEnsemble(d, rows, ownIds, candidate, { drafted, j, at, rowAts }) : await this.ensemble(d, rows, ownIds, candidate, gac);
      state.stats.ensembledTokens++;
      // Aborted during a look-ahead pass: the tokens before the point stand, nothing at it.
      if (appended === null) return { trigger: j, appended: [], drafterCacheMoved: this.drafterMoved };
      return { trigger: j, appended, drafterCacheMoved: this.drafterMoved };
    }
    state.stats.time.tokenizingMs += performance.now() - t1;
    return { trigger: -1, appended: [], drafterCacheMoved: false };
  }

  /** How many of verifier vi's tokens after its token k still start before byte `end` (the rest of the drafted token). */
  private coveringTokens(vi: number, k: number, end: number): number {
    const t = this.state.verifiers[vi]!.tokens!;
    return Math.max(0, Math.min(firstTokenAtOrAfter(t, end), t.ids.length) - k - 1);
  }

  /** Whether verifier vi's argmax is its own token at each of its `count` tokens after token k. */
  private agreesAlong(vi: number, rowAt: (q: number) => RowScore, k: number, count: number): boolean {
    const v = this.state.verifiers[vi]!;
    const P = v.prompt.ids.length;
    for (let i = 1; i <= count; i++) if (!sameChoice(v.vocab, rowAt(P + k + i).best, v.tokens!.ids[k + i]!)) return false;
    return true;
  }

  /** Verifier vi's probability of its `count` tokens after token k, given the ones before (the chain rule). */
  private async chainAlong(vi: number, rowAt: (q: number) => RowScore, k: number, count: number): Promise<number> {
    const v = this.state.verifiers[vi]!;
    const P = v.prompt.ids.length;
    let p = 1;
    for (let i = 1; i <= count; i++) p *= await probabilityOf(rowAt(P + k + i), v.tokens!.ids[k + i]!);
    return p;
  }

  /** Whether the last look-ahead point fed the drafter past the trigger. */
  private drafterMoved = false;
  /** Whether the last look-ahead point fed any member other tokens (its rows past the point are stale). */
  private pointMoved = false;

  /**
   * A greedy ensemble point scored by look-ahead (see lookAheadScoring.ts): the first-token
   * union picks the candidates, then each model scores them as whole strings. Returns the
   * drafter ids to append, or null when aborted.
   */
  private async lookAheadEnsemble(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, where: ChunkPosition): Promise<number[] | null> {
    const { state } = this;
    const o = state.options;
    const first = await this.ensemblePoint(d, verifierRows, text, false);
    const t0 = performance.now();
    const { keys, average } = first.decision;
    const ranked = [...keys.keys()].sort((a, b) => average[b]! - average[a]! || a - b).slice(0, o.lookAheadCandidates);
    const draftedKey = state.drafter.vocab.key(d.id);
    const candidates = ranked.map((e) => keys[e]!);
    if (!candidates.includes(draftedKey) && keys.includes(draftedKey)) candidates.push(draftedKey);
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
        context: first.context,
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
        ...(state.sampling ? { kept: (row: RowScore) => row.truncated(state.sampling!.truncation) } : {}),
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
  private async familyAcceptanceAt(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, where: ChunkPosition): Promise<{ appended: number[] } | { testedUntil: number } | null> {
    const { state } = this;
    const o = state.options;
    const sampling = state.sampling!;
    const vocab = state.drafter.vocab;
    this.pointMoved = false;
    const first = await this.ensemblePoint(d, verifierRows, text, false);
    const t0 = performance.now();
    const { keys, average } = first.decision;
    // The candidates depend on the rows only, never on the draft (the test would be biased).
    const ranked = [...keys.keys()].sort((a, b) => average[b]! - average[a]! || a - b).slice(0, o.lookAheadCandidates);
    const candidates = ranked.map((e) => keys[e]!);
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
      const views = await Promise.all(models.map(async (m) => {
        const top = m.row.top(o.unionTopK);
        const kept = await m.kept!(m.row);
        return { model: m, ids: top.ids, probabilities: Array.from(top.ids, (id, i) => keptProbability(kept, id, top.logits[i]!)) };
      }));
      const uniform = sampling.random.uniform(Stream.Accept, state.stats.cycles, d.index);
      const bound = acceptanceLowerBound(views, roots, known);
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
          await this.recorder.record({ d, scores: first.scores, verifierOwn, decision: first.decision, entry: -1, appended: [d.id], gac: false, sampling: { probabilities: ensembleProbabilities(first.decision), acceptance }, lookAhead: { passes: 0, prefixMass: [] } });
        }
        const root = roots[known]!;
        return { testedUntil: root === EOS_KEY ? d.offset + 1 : d.offset + root.length };
      }
    }
    const family = await familyDistribution(models, candidates);
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
      const decision: EnsembleDecision = { keys: family.roots, perModel: family.perModel, average: family.p, scores: family.p, sharpened: false, winner: entry, bareSpaceGaveWay: null };
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

  /**
   * Builds the ensemble at a position, records it, and returns the drafter ids to append: the
   * decision's winner, or when sampling a draw from the ensemble distribution.
   */
  async ensemble(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, gac: boolean): Promise<number[]> {
    const point = await this.ensemblePoint(d, verifierRows, text, gac);
    const t0 = performance.now();
    let entry = point.decision.winner;
    let sampling: TraceSampling | undefined;
    if (this.state.sampling) {
      const p = ensembleProbabilities(point.decision);
      const uniform = this.state.sampling.random.uniform(Stream.Ensemble, this.state.stats.cycles, d.index);
      entry = drawIndex(p, uniform);
      sampling = { probabilities: p, draw: { from: 'ensemble', uniform, probability: p[entry]! } };
    }
    const appended = this.appendedFor(point, entry, d);
    this.state.stats.time.ensemblingMs += performance.now() - t0;
    await this.recorder.record({ d, scores: point.scores, verifierOwn, decision: point.decision, entry, appended, gac, ...(sampling ? { sampling } : {}) });
    return appended;
  }

  /**
   * SAFE's acceptance test at a stable position (sampling): the drafted token stands with
   * probability min(1, P_ens / P_draft); otherwise a token is drawn by the rejection rule.
   * Returns null when the token stands, else the drafter ids to append.
   */
  private async acceptanceAt(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, gac: boolean): Promise<number[] | null> {
    const { state } = this;
    const sampling = state.sampling!;
    const point = await this.ensemblePoint(d, verifierRows, text, gac);
    const t0 = performance.now();
    const { keys } = point.decision;
    const p = ensembleProbabilities(point.decision);
    const kept = await d.score.truncated(sampling.truncation);
    const q = await this.drafterStringProbabilities(d, keys, kept);
    const drafted = keys.indexOf(state.drafter.vocab.key(d.id));
    const qDrafted = keptProbability(kept, d.id, d.logit!);
    const acceptUniform = sampling.random.uniform(Stream.Accept, state.stats.cycles, d.index);
    const rejectionUniform = sampling.random.uniform(Stream.Rejection, state.stats.cycles, d.index);
    const outcome: AcceptanceOutcome = acceptanceTest(p, q, drafted, qDrafted, state.options.rejectionRule, acceptUniform, rejectionUniform);
    const counts = state.stats.sampling!;
    counts.tested++;
    state.stats.ensembledTokens++;
    if (outcome.accepted) counts.accepted++;
    else counts.rejected++;
    const entry = outcome.drawn ? outcome.drawn.entry : drafted;
    const appended = outcome.accepted ? [d.id] : this.appendedFor(point, entry, d);
    state.stats.time.ensemblingMs += performance.now() - t0;
    if (state.options.trace) {
      const trace: TraceSampling = {
        probabilities: p,
        draftProbabilities: q,
        acceptance: { draftProbability: qDrafted, ensembleProbability: drafted >= 0 ? p[drafted]! : 0, acceptProbability: outcome.acceptProbability, uniform: acceptUniform, accepted: outcome.accepted },
        ...(outcome.drawn ? { draw: { from: outcome.drawn.from, uniform: rejectionUniform, probability: outcome.drawn.probability } } : {}),
      };
      await this.recorder.record({ d, scores: point.scores, verifierOwn, decision: point.decision, entry: outcome.accepted && drafted < 0 ? -1 : entry, appended, gac, sampling: trace });
    }
    return outcome.accepted ? null : appended;
  }

  /**
   * The drafter's probability of each union string under its tempered, truncated distribution:
   * the probability of the token whose bytes are exactly that string (0 when it has none).
   */
  private async drafterStringProbabilities(d: Drafted, keys: readonly string[], kept: KeptSet): Promise<Float64Array> {
    const vocab = this.state.drafter.vocab;
    const ids = keys.map((key) => (key === EOS_KEY ? vocab.eosId : vocab.idOf(key)) ?? -1);
    const top = d.score.top();
    const known = new Map<number, number>();
    for (let i = 0; i < top.ids.length; i++) known.set(top.ids[i]!, top.logits[i]!);
    if (d.logit !== undefined) known.set(d.id, d.logit);
    const missing = [...new Set(ids.filter((id) => id >= 0 && !known.has(id)))];
    if (missing.length) {
      const logits = await d.score.logitsOf(missing);
      missing.forEach((id, i) => known.set(id, logits[i]!));
    }
    return Float64Array.from(ids, (id) => (id < 0 ? 0 : keptProbability(kept, id, known.get(id)!)));
  }

  /** The kept set of a member's row when sampling (a whole row without a cut keeps everything: no read). */
  private async keptOf(m: Member, row: RowScore): Promise<KeptSet> {
    const sampling = this.state.sampling!;
    const t = sampling.truncation;
    if (!sampling.cut && m.lm.wholeRows && !this.state.constraint) return { temperature: t.temperature, all: true, count: row.width, cutoffLogit: -Infinity, cutoffId: row.width - 1, ids: null, logNormalizer: NaN };
    return row.truncated(t);
  }

  /** The drafter ids that write union entry `entry` after the context (the drafted token when none do). */
  private appendedFor(point: EnsemblePoint, entry: number, d: Drafted): number[] {
    const appended = this.state.drafter.vocab.appendIds(point.decision.keys[entry]!, point.context, point.gac);
    return appended.length === 0 ? [d.id] : appended;
  }

  /**
   * The ensemble distribution and greedy decision at a position. The members' rows are read
   * where their sessions hold them: UniTE reads the logits of its fill-in ids, GaC the whole
   * rows; when sampling, each member's distribution is tempered and cut first.
   */
  private async ensemblePoint(d: Drafted, verifierRows: RowScore[], text: Uint8Array, gac: boolean): Promise<EnsemblePoint> {
    const t0 = performance.now();
    const { state } = this;
    const o = state.options;
    const context = contextBefore(text, d.offset);
    // At the response start a verifier's dummy-prefix space is not part of the response (the
    // drafter's own first token is never ensembled when it carries one: see `lead`).
    const responseStart = d.offset - state.lead === 0;
    const scores = [d.score, ...verifierRows];
    const members = [state.drafter, ...state.verifiers];
    const views: Array<Omit<ModelView, 'row'>> = members.map((m, i) => ({ vocab: m.vocab, weight: m.weight, context, dummySpace: i > 0 && responseStart && m.addsSpace }));
    const keptSets = state.sampling ? Promise.all(scores.map((r, i) => this.keptOf(members[i]!, r))) : Promise.resolve(null);
    let dist: EnsembleDistribution;
    if (gac) {
      const [rows, kept] = await Promise.all([Promise.all(scores.map((r) => r.row())), keptSets]);
      const used = kept ? rows.map((row, i) => truncatedRow(row, kept[i]!)) : rows;
      // GaC's union is indexed in model order; the views put the drafter first.
      const inModelOrder = state.members.map((m) => members.indexOf(m));
      dist = this.gacUnion().distribution(inModelOrder.map((i) => ({ ...views[i]!, row: used[i]! })), o.unionTopK);
    } else {
      const union: UnionMember[] = views.map((v, i) => ({ ...v, top: scores[i]!.top(o.unionTopK) }));
      const plan = planUnite(union, scores.map((r) => r.width));
      const [fills, kept] = await Promise.all([Promise.all(scores.map((r, i) => r.logitsOf(plan.fills[i]!.map((f) => f.id)))), keptSets]);
      dist = finishUnite(plan, fills, union, kept ?? undefined);
    }
    const weights = gac ? state.members.map((m) => m.weight) : views.map((v) => v.weight);
    const decision = decide(dist, topKeys(state.drafter.vocab, d.score.top(o.unionTopK).ids, o.unionTopK), weights, o.sharpening);
    state.stats.time.ensemblingMs += performance.now() - t0;
    return { decision, context, scores, gac };
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

function sameChoice(vocab: Vocabulary, choice: number, own: number): boolean {
  return choice === own || (vocab.isEos(choice) && vocab.isEos(own));
}
