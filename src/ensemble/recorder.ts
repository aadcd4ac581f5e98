/**
 * The recorder: a generation's statistics and trace. The other pieces count into
 * {@link GenerationState.stats}; the recorder starts them, writes one trace record per ensemble
 * point and builds the result.
 * @module
 */
import type { MemberNetworkStats } from '../member/member.js';
import type { RowScore } from '../member/scores.js';
import type { EnsembleDecision } from './aggregate.js';
import type { ResolvedOptions } from './options.js';
import { probabilityOf, type Drafted, type GenerationState, type Member } from './sequence.js';
import type { EnsembleResult, EnsembleStats, TraceRecord, TraceSampling } from './types.js';
import { keyText } from './vocabulary.js';

/** Statistics of a generation that has not run yet. */
export function freshStats(options: ResolvedOptions, promptTokens: number[], pipelined: boolean): EnsembleStats {
  const stats: EnsembleStats = {
    strategy: options.strategy,
    promptTokens,
    generatedTokens: 0,
    draftedTokens: 0,
    acceptedTokens: 0,
    ensembledTokens: 0,
    ensembleRatePct: 0,
    cycles: 0,
    forwardPasses: promptTokens.map(() => 0),
    time: { draftingMs: 0, verifyingMs: 0, tokenizingMs: 0, ensemblingMs: 0, totalMs: 0 },
  };
  if (pipelined) stats.pipeline = { draftedAhead: 0, discarded: 0 };
  if (options.strategy === 'safe' && options.unionScoring !== 'first-token' && options.baseEnsembler === 'unite') stats.lookAhead = { points: 0, passes: 0, bounded: 0 };
  return stats;
}

/** What an ensemble point recorded: the decision and what was committed for it. */
export interface EnsembleRecord {
  /** The drafted position. */
  d: Drafted;
  /** Rows, drafter first. */
  scores: RowScore[];
  /** Each verifier's own token at the position. */
  verifierOwn: number[];
  decision: EnsembleDecision;
  /** The union entry committed (-1: the drafted token stood without being a union entry). */
  entry: number;
  /** The drafter ids appended. */
  appended: number[];
  gac: boolean;
  sampling?: TraceSampling;
  /** Look-ahead scoring: passes run and each model's prefix mass per entry (drafter first). */
  lookAhead?: { passes: number; prefixMass: Float64Array[] };
}

export class Recorder {
  private readonly trace: TraceRecord[] = [];
  private readonly started = performance.now();
  /** Remote members' request totals when the generation started (null for local ones). */
  private readonly networkAtStart: Array<MemberNetworkStats | null>;
  /** 1 once the drafter committed end-of-sequence (it counts as a generated token). */
  eosGenerated = 0;

  constructor(private readonly state: GenerationState) {
    this.networkAtStart = state.members.map((m) => (m.lm.stats ? { ...m.lm.stats } : null));
  }

  /** Writes the trace record of an ensemble point (only when tracing). */
  async record(point: EnsembleRecord): Promise<void> {
    const { state } = this;
    if (!state.options.trace) return;
    const { d, scores, verifierOwn, decision, entry, appended, gac, sampling, lookAhead } = point;
    const ownIds = [d.id, ...verifierOwn];
    const members: Member[] = [state.drafter, ...state.verifiers];
    const probabilities = await Promise.all(scores.map((r, i) => probabilityOf(r, ownIds[i]!)));
    const models = scores.map((r, i) => {
      const vocab = members[i]!.vocab;
      return { model: members[i]!.lm.name, token: keyText(vocab.key(ownIds[i]!)), probability: probabilities[i]!, argmax: keyText(vocab.key(r.best)) };
    });
    const order = [...decision.scores.keys()].sort((a, b) => decision.scores[b]! - decision.scores[a]!).slice(0, 20);
    const modelOrder = gac ? state.members : members;
    const permute = (perModel: Float64Array[], e: number) => members.map((m) => perModel[modelOrder.indexOf(m)]![e]!);
    this.trace.push({
      tokenIndex: d.index,
      byteOffset: d.offset,
      cycle: state.stats.cycles,
      drafted: { text: keyText(state.drafter.vocab.key(d.id)), probability: models[0]!.probability },
      models,
      meanOwnProbability: models.reduce((s, m, i) => s + members[i]!.weight * m.probability, 0),
      candidates: order.map((e) => ({
        text: keyText(decision.keys[e]!),
        average: decision.average[e]!,
        score: decision.scores[e]!,
        perModel: permute(decision.perModel, e),
        ...(sampling ? { probability: sampling.probabilities[e]! } : {}),
        ...(sampling?.draftProbabilities ? { draftProbability: sampling.draftProbabilities[e]! } : {}),
        ...(lookAhead && lookAhead.prefixMass.length > 0 ? { prefixMass: permute(lookAhead.prefixMass, e) } : {}),
      })),
      ...(lookAhead ? { lookAhead: { passes: lookAhead.passes } } : {}),
      sharpened: decision.sharpened,
      bareSpaceGaveWay: decision.bareSpaceGaveWay !== null,
      winner: { text: entry >= 0 ? keyText(decision.keys[entry]!) : keyText(state.drafter.vocab.key(d.id)), ids: appended },
      ...(sampling?.acceptance ? { acceptance: sampling.acceptance } : {}),
      ...(sampling?.draw ? { draw: sampling.draw } : {}),
    });
  }

  /** The result: the text, why it ended, the statistics (totals filled in) and the trace. */
  result(text: string): EnsembleResult {
    const { state } = this;
    const s = state.stats;
    s.generatedTokens = state.ids.length + this.eosGenerated;
    s.ensembleRatePct = s.generatedTokens > 0 ? (100 * s.ensembledTokens) / s.generatedTokens : 0;
    s.forwardPasses = state.members.map((m) => m.forwardPasses);
    if (this.networkAtStart.some((x) => x !== null)) {
      s.network = state.members.map((m, i) => {
        const before = this.networkAtStart[i];
        const now = m.lm.stats;
        if (!before || !now) return null;
        return {
          requests: now.requests - before.requests,
          bytesSent: now.bytesSent - before.bytesSent,
          bytesReceived: now.bytesReceived - before.bytesReceived,
          waitMs: now.waitMs - before.waitMs,
          retries: now.retries - before.retries,
          boundedLogprobs: now.boundedLogprobs - before.boundedLogprobs,
          cachedTokens: now.cachedTokens - before.cachedTokens,
        };
      });
    }
    s.time.totalMs = performance.now() - this.started;
    return { text, finishReason: state.finish ?? 'length', stats: s, ...(state.options.trace ? { trace: this.trace } : {}) };
  }
}
