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
import { decide, finishUnite, planUnite, topKeys, truncatedRow, type EnsembleDistribution, type GacUnion, type ModelView, type UnionMember } from './aggregate.js';
import { consensusSkip } from './gates.js';
import { LookAheadPoints, type EnsemblePoint } from './lookAheadPoint.js';
import type { Recorder } from './recorder.js';
import { acceptanceTest, drawIndex, ensembleProbabilities, Stream, type AcceptanceOutcome } from './sampling.js';
import type { VerifierScorer } from './scorer.js';
import { contextBefore, firstTokenAtOrAfter, probabilityOf, type Drafted, type GenerationState, type Member } from './sequence.js';
import type { TraceSampling } from './types.js';
import { EOS_KEY, type Vocabulary } from './vocabulary.js';

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


export class Decider {
  /** Look-ahead scoring's ensemble points (greedy and sampled). */
  private readonly lookAhead: LookAheadPoints;

  constructor(
    private readonly state: GenerationState,
    private readonly scorer: VerifierScorer,
    private readonly recorder: Recorder,
    private readonly gacUnion: () => GacUnion,
  ) {
    this.lookAhead = new LookAheadPoints(state, recorder, (d, rows, text) => this.ensemblePoint(d, rows, text, false));
  }

  /**
   * Scans `drafted` in order for the earliest stable position the models contest and decides
   * it. `rowAts[vi](q)` is verifier vi's row for sequence position q; `candidate` the drafter's
   * text with the chunk, `response` the same without the drafter's lead.
   */
  async decideChunk(drafted: readonly Drafted[], rowAts: Array<(q: number) => RowScore>, candidate: Uint8Array, response: Uint8Array): Promise<ChunkDecision> {
    const { state, scorer } = this;
    const o = state.options;
    const { drafter, verifiers } = state;
    this.lookAhead.drafterMoved = false;
    const gac = o.baseEnsembler === 'gac';
    // Greedy 'auto' reads the gates at the drafted token's granularity and scores by look-ahead
    // where the models' tokens split the text differently (sampling 'auto' was resolved to 'look-ahead').
    const lookAheadUnion = o.unionScoring !== 'first-token' && !gac && !state.constraint;
    const lookAhead = lookAheadUnion && !state.sampling;
    const adaptive = lookAhead && o.unionScoring === 'auto';
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
          const outcome = await this.lookAhead.acceptance(d, rows, ownIds, candidate, { drafted, j, at, rowAts });
          t1 = performance.now();
          if (outcome === null) return { trigger: j, appended: [], drafterCacheMoved: this.lookAhead.drafterMoved };
          if ('appended' in outcome) return { trigger: j, appended: outcome.appended, drafterCacheMoved: this.lookAhead.drafterMoved };
          testedUntil = outcome.testedUntil;
          // A pass fed a member other tokens: the rows of the positions after are gone. The
          // chunk stands through the accepted root; the next cycle verifies on from there.
          if (this.lookAhead.pointMoved) {
            const next = drafted.findIndex((x) => x.offset >= testedUntil);
            return { trigger: next < 0 ? drafted.length : next, appended: [], drafterCacheMoved: this.lookAhead.drafterMoved };
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
      const end = eos ? offset : offset + drafter.lm.tokenizer.tokenBytes(d.id).length;
      const spans = lookAhead ? at.map((k, vi) => this.coveringTokens(vi, k, end)) : null;
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
      // Every verifier's token here ends where the drafted one does: the same granularity.
      const aligned = eos || at.every((k, vi) => verifiers[vi]!.tokens!.ends[k] === end);
      const firstToken = adaptive && aligned ? (point: EnsemblePoint) => this.commit(point, d, ownIds, gac) : undefined;
      const appended = lookAhead ? await this.lookAhead.greedy(d, rows, ownIds, candidate, { drafted, j, at, rowAts }, firstToken) : await this.ensemble(d, rows, ownIds, candidate, gac);
      state.stats.ensembledTokens++;
      // Aborted during a look-ahead pass: the tokens before the point stand, nothing at it.
      if (appended === null) return { trigger: j, appended: [], drafterCacheMoved: this.lookAhead.drafterMoved };
      return { trigger: j, appended, drafterCacheMoved: this.lookAhead.drafterMoved };
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

  /**
   * Builds the ensemble at a position, records it, and returns the drafter ids to append: the
   * decision's winner, or when sampling a draw from the ensemble distribution.
   */
  async ensemble(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, gac: boolean): Promise<number[]> {
    return this.commit(await this.ensemblePoint(d, verifierRows, text, gac), d, verifierOwn, gac);
  }

  /** Records the ensemble point at drafted token `d` and returns the drafter ids that commit its winner (or, per-token sampling, its draw). */
  private async commit(point: EnsemblePoint, d: Drafted, verifierOwn: number[], gac: boolean): Promise<number[]> {
    const t0 = performance.now();
    let entry = point.decision.winner;
    let sampling: TraceSampling | undefined;
    if (this.state.sampling) {
      const p = ensembleProbabilities(point.decision, this.state.sampling!.ensembleExponent);
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
    const p = ensembleProbabilities(point.decision, this.state.sampling!.ensembleExponent);
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
    const t = sampling.memberTruncation;
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

function sameChoice(vocab: Vocabulary, choice: number, own: number): boolean {
  return choice === own || (vocab.isEos(choice) && vocab.isEos(own));
}
