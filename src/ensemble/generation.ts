/**
 * One generation: the SAFE loop (draft → verify → decide → commit) and the per-token
 * strategies, driving four pieces over models that already hold their prompts:
 * - the proposer (proposer.ts) drafts, drafts ahead, rolls back;
 * - the scorer (scorer.ts) re-tokenizes and verifies, and answers look-ahead questions;
 * - the decider (decider.ts) runs the gates, the ensemble and, when sampling, the acceptance test;
 * - the recorder (recorder.ts) keeps statistics and the trace.
 * A constraint (constraint.ts), when set, masks every row the pieces read.
 * @module
 */
import type { SequenceModel } from '../member/member.js';
import { keptProbability } from '../member/truncation.js';
import { ResponseTokenization } from '../text/continuation.js';
import type { GacUnion } from './aggregate.js';
import { Decider } from './decider.js';
import { isSampling, type ResolvedOptions } from './options.js';
import type { ModelPrompt } from './prompt.js';
import { DraftProposer } from './proposer.js';
import { freshStats, Recorder } from './recorder.js';
import { ByteBuffer, ResponseText } from './responseText.js';
import { freshSeed, SamplingRandom } from './sampling.js';
import { VerifierScorer } from './scorer.js';
import { firstTokenAtOrAfter, responseAddsSpace, type Drafted, type GenerationState, type Member } from './sequence.js';
import type { EnsembleResult } from './types.js';
import { Vocabulary } from './vocabulary.js';

/** The shared state of a generation over `models` holding `prompts` (drafter at `drafterIndex`). */
export function generationState(models: readonly SequenceModel[], prompts: readonly ModelPrompt[], drafterIndex: number, options: ResolvedOptions): GenerationState {
  const weights = options.weights ?? models.map(() => 1 / models.length);
  const members: Member[] = models.map((lm, i) => ({
    lm,
    vocab: Vocabulary.of(lm.tokenizer),
    prompt: prompts[i]!,
    weight: weights[i]!,
    tokens: i === drafterIndex ? null : new ResponseTokenization(lm.tokenizer, prompts[i]!.context),
    forwardPasses: 0,
    lastRow: null,
    lastRowAt: -1,
    addsSpace: responseAddsSpace(lm, prompts[i]!),
  }));
  const drafter = members[drafterIndex]!;
  // Drafting ahead while verifiers work pays only where some member runs off this thread.
  const pipelined = options.strategy === 'safe' && models.some((m) => m.runsConcurrently);
  const stats = freshStats(options, prompts.map((p) => p.ids.length), pipelined);
  let sampling: GenerationState['sampling'] = null;
  if (isSampling(options)) {
    const random = new SamplingRandom(options.seed ?? freshSeed());
    const truncation = { temperature: options.temperature, topK: options.topK, topP: options.topP };
    const atEnsemble = options.temperatureAt === 'ensemble';
    sampling = { truncation, memberTruncation: atEnsemble ? { ...truncation, temperature: 1 } : truncation, ensembleExponent: atEnsemble ? 1 / options.temperature : 1, random, cut: options.topK > 0 || options.topP < 1 };
    stats.sampling = { seed: random.seed, tested: 0, accepted: 0, rejected: 0 };
  }
  return { options, members, drafter, verifiers: members.filter((m) => m !== drafter), bytes: new ByteBuffer(), ids: [], lead: 0, verifiedBase: 0, finish: null, stats, sampling, constraint: options.constraint ?? null, budget: options.maxNewTokens };
}

/** Runs one generation; `run()` yields committed text and returns the result. */
export class Generation {
  private readonly state: GenerationState;
  private readonly proposer: DraftProposer;
  private readonly scorer: VerifierScorer;
  private readonly decider: Decider;
  private readonly recorder: Recorder;
  private readonly text: ResponseText;
  /** Most drafter tokens this generation may commit. */
  private readonly budget: number;

  /**
   * `othersRunning` tells whether other generations share the members now: then the drafter has
   * their passes to run while the verifiers score, and drafting ahead would only add passes.
   */
  constructor(models: readonly SequenceModel[], prompts: readonly ModelPrompt[], drafterIndex: number, options: ResolvedOptions, gacUnion: () => GacUnion, private readonly othersRunning: () => boolean = () => false) {
    const state = (this.state = generationState(models, prompts, drafterIndex, options));
    this.recorder = new Recorder(state);
    this.proposer = new DraftProposer(state);
    this.scorer = new VerifierScorer(state);
    this.decider = new Decider(state, this.scorer, this.recorder, gacUnion);
    this.text = new ResponseText(state.bytes, options.stop);
    // Stop at the smallest context among the models (verifier tokenizations may run a little
    // longer than the drafter's, hence the margin of one draft).
    const room = Math.min(...state.members.map((m) => m.lm.maxPositions - m.prompt.ids.length)) - options.draftLength - 1;
    this.budget = Math.max(1, Math.min(options.maxNewTokens, room));
    state.budget = this.budget;
  }

  /** Yields text as it is committed; returns the result. */
  async *run(): AsyncGenerator<string, EnsembleResult> {
    const { state } = this;
    const signal = state.options.signal;
    const perToken = state.options.strategy !== 'safe';
    while (state.finish === null) {
      if (signal?.aborted) {
        state.finish = 'abort';
        break;
      }
      let committed: number[] | null;
      try {
        committed = perToken ? await this.perTokenStep() : await this.safeCycle();
      } catch (error) {
        // A remote member's read (UniTE's fill-in) stops when the signal fires: an abort.
        if (!signal?.aborted) throw error;
        state.finish = 'abort';
        break;
      }
      if (committed === null) break;
      state.stats.cycles++;
      this.commit(committed);
      const delta = this.text.release();
      if (delta) yield delta;
    }
    // A signal that fired during the last pass still wins: the caller asked to stop.
    if (signal?.aborted) state.finish = 'abort';
    const rest = this.text.finish();
    if (rest) yield rest;
    return this.recorder.result(this.text.text());
  }

  /** One SAFE cycle: draft a chunk, verify it, decide the first contested position; the ids to commit, or null when aborted. */
  private async safeCycle(): Promise<number[] | null> {
    const { state, proposer } = this;
    const { drafter, stats } = state;
    const draftLength = state.options.draftLength;
    const budget = this.budget - state.ids.length;
    const base = state.bytes.length;

    // 1. Draft. Tokens carried over (drafted after a position whose ensemble kept the drafter's
    // own token, or ahead while the verifiers worked) are still the drafter's continuation.
    const drafted: Drafted[] = proposer.carry.slice(0, Math.min(draftLength, budget));
    proposer.carry = [];
    if (!(await proposer.draftInto(drafted, Math.min(draftLength, budget), false))) return null;
    // Tokens drafted ahead count (as drafted tokens and drafter passes) once they enter a chunk,
    // as they would have been drafted then: statistics equal those of sequential execution.
    for (const d of drafted.filter((x) => !x.counted)) {
      d.counted = true;
      stats.draftedTokens++;
      drafter.forwardPasses++;
    }
    if (state.ids.length === 0) state.lead = proposer.leadOf(drafted[0]!.id);
    const candidate = state.bytes.with(drafted.filter((d) => !drafter.vocab.isEos(d.id)).map((d) => drafter.lm.tokenizer.tokenBytes(d.id)));
    const response = candidate.subarray(state.lead);

    // While the verifiers score this chunk, the drafter drafts the next one as if this one will
    // be accepted whole (it stops when they are done) — unless other generations keep it busy.
    const chain = [...drafted];
    let verifying = true;
    const ahead = stats.pipeline && !this.othersRunning() && !drafter.vocab.isEos(drafted[drafted.length - 1]!.id)
      ? proposer.draftInto(chain, drafted.length + Math.min(draftLength, budget - drafted.length), true, () => !verifying)
      : Promise.resolve(true);

    // 2–3. Verifiers re-tokenize the candidate text and score it, one pass each, all at once:
    // rows from the token that straddles the chunk start on.
    const changed = this.scorer.retokenize(response);
    const chunkStart = Math.max(0, base - state.lead);
    const verification = this.scorer.allVerifiers((v, vi) => this.scorer.verifierRows(v, changed[vi]!, v.prompt.ids.length + Math.max(0, firstTokenAtOrAfter(v.tokens!, chunkStart) - 1), 'all')).finally(() => (verifying = false));
    // Both must settle before anything else touches the models.
    const [scored, draftedAhead] = await Promise.allSettled([verification, ahead]);
    if (scored.status === 'rejected') throw scored.reason;
    if (draftedAhead.status === 'rejected') throw draftedAhead.reason;
    if (!scored.value || !draftedAhead.value) return null;
    state.verifiedBase = chunkStart;

    // 4–6. The first stable, contested position is ensembled; the tokens before it stand.
    const { trigger, appended, drafterCacheMoved } = await this.decider.decideChunk(drafted, scored.value, candidate, response);
    const commit = trigger < 0 ? drafted.map((d) => d.id) : drafted.slice(0, trigger).map((d) => d.id).concat(appended);
    stats.acceptedTokens += trigger < 0 ? drafted.length : trigger;

    // An ensemble that kept the drafter's own token leaves the rest of the draft (and what was
    // drafted ahead) valid: carry it. Otherwise the work ahead is dropped.
    // (Look-ahead scoring that fed the drafter other tokens past the point leaves nothing to carry.)
    const keepsDraft = !drafterCacheMoved && (trigger < 0 || (commit.length === trigger + 1 && commit[trigger] === drafted[trigger]!.id));
    if (keepsDraft) proposer.carry = chain.slice(commit.length);
    if (stats.pipeline) {
      stats.pipeline.draftedAhead += chain.length - drafted.length;
      if (!keepsDraft) stats.pipeline.discarded += chain.length - drafted.length;
    }
    if (drafterCacheMoved) proposer.resync(commit);
    else proposer.rollback(commit, chain);
    return commit;
  }

  /** One token of `single`, `every-token` or `gac-threshold`. */
  private async perTokenStep(): Promise<number[] | null> {
    const { state, proposer } = this;
    const o = state.options;
    const next = await proposer.nextRow();
    if (!next) return null;
    // every-token draws every token from the ensemble: the drafter's own draw (a read of its row)
    // is needed only for the first token, which may carry its dummy-prefix space (see `lead`).
    const { id, logit, kept } = await proposer.drawDrafted(next, state.stats.cycles, state.ids.length, o.strategy === 'every-token' && state.ids.length > 0);
    state.stats.draftedTokens++;
    let ensembleHere = o.strategy === 'every-token';
    if (o.strategy === 'gac-threshold') {
      // The drafter's confidence: the probability of its best token (tempered, when sampling).
      const top = kept ? keptProbability(kept, next.best, next.max) : Math.exp(next.max - (await next.logNormalizer()));
      ensembleHere = top < o.gacDrafterGate;
    }
    if (state.ids.length === 0) state.lead = proposer.leadOf(id);
    if (!ensembleHere || (state.ids.length === 0 && state.lead > 0)) {
      state.stats.acceptedTokens++;
      return [id];
    }
    // Verifiers: the distribution after their tokenization of the committed text, wherever it ends.
    const base = state.bytes.length;
    const response = state.bytes.view().subarray(state.lead);
    const changed = this.scorer.retokenize(response);
    const ends = state.verifiers.map((v) => v.tokens!.ids.length);
    const rowAts = await this.scorer.allVerifiers((v, vi) => this.scorer.verifierRows(v, changed[vi]!, v.prompt.ids.length + ends[vi]!, 'last'));
    if (!rowAts) return null;
    const rows = await Promise.all(rowAts.map((rowAt, vi) => this.scorer.rowFor(vi, rowAt, ends[vi]!, response, response.length)));
    state.verifiedBase = Math.max(0, base - state.lead);
    const appended = await this.decider.ensemble({ id, score: next, logit, offset: base, index: state.ids.length, counted: true }, rows, rows.map((r) => r.best), state.bytes.view(), o.strategy === 'gac-threshold');
    state.stats.ensembledTokens++;
    return appended;
  }

  /** Appends committed ids to the response and checks the stop conditions. */
  private commit(ids: number[]): void {
    const { state } = this;
    const tok = state.drafter.lm.tokenizer;
    for (const id of ids) {
      if (state.drafter.vocab.isEos(id)) {
        state.finish = 'eos';
        this.recorder.eosGenerated = 1;
        break;
      }
      if (state.ids.length >= this.budget) break;
      state.ids.push(id);
      state.bytes.append(tok.tokenBytes(id));
      // A sentencepiece drafter's first word carries a leading space: not shown.
      if (state.ids.length === 1 && tok.dummyPrefixBytes('a') === 1 && state.bytes.view()[0] === 0x20) this.text.setHidden(1);
    }
    if (this.text.checkStops()) state.finish = 'stop';
    else if (state.finish === null && state.ids.length >= this.budget) state.finish = 'length';
  }
}
