/**
 * One generation: the SAFE draft–verify–ensemble loop and the per-token baselines, over
 * models that already hold their prompts. Knows models only through the member seam
 * (member.ts): score ids, read rows, crop.
 * @module
 */
import type { RowScore, Scores } from '../runtime/scores.js';
import { keptProbability, type KeptSet, type Truncation } from '../runtime/truncation.js';
import { isCharBoundary } from '../text/bytes.js';
import { encodeContinuation, ResponseTokenization } from '../text/continuation.js';
import { decide, finishUnite, GacUnion, planUnite, topKeys, truncatedRow, type EnsembleDecision, type EnsembleDistribution, type ModelView, type UnionMember } from './aggregate.js';
import { consensusSkip, stableAlignment } from './gates.js';
import type { EnsembleMember } from './member.js';
import { isSampling, type ResolvedOptions } from './options.js';
import type { ModelPrompt } from './prompt.js';
import { ByteBuffer, ResponseText } from './responseText.js';
import { acceptanceTest, drawIndex, ensembleProbabilities, freshSeed, SamplingRandom, Stream, type AcceptanceOutcome } from './sampling.js';
import type { EnsembleResult, EnsembleStats, FinishReason, MemberNetworkStats, TraceRecord, TraceSampling } from './types.js';
import { EOS_KEY, keyText, Vocabulary } from './vocabulary.js';

/** A model taking part in one generation. */
interface Member {
  lm: EnsembleMember;
  vocab: Vocabulary;
  prompt: ModelPrompt;
  weight: number;
  /** The response as this model tokenizes it (verifiers only). */
  tokens: ResponseTokenization | null;
  forwardPasses: number;
  /** Last row of the previous pass and the sequence position it predicts. */
  lastRow: RowScore | null;
  lastRowAt: number;
  /** Whether this model's response encoding starts with a dummy-prefix space ("▁Nora" for "Nora"). */
  addsSpace: boolean;
}

/** Whether a tokenizer writes a dummy-prefix space before a response in this prompt context. */
function responseAddsSpace(lm: EnsembleMember, prompt: ModelPrompt): boolean {
  const tok = lm.tokenizer;
  const probe = encodeContinuation(tok, prompt.context, 'x') ?? encodeContinuation(tok, { text: '', special: null }, 'x');
  return !!probe && probe.ids.length > 0 && tok.tokenBytes(probe.ids[0]!)[0] === 0x20;
}

/** Bytes of context (before a position) used to tokenize candidate strings in context. */
const CONTEXT_BYTES = 48;

/** Two id arrays read as one sequence, without copying them (prompt ++ response). */
class Joined {
  constructor(
    private readonly head: readonly number[],
    private readonly tail: readonly number[],
    private readonly extra: readonly number[] = [],
  ) {}

  get length(): number {
    return this.head.length + this.tail.length + this.extra.length;
  }

  at(i: number): number {
    if (i < this.head.length) return this.head[i]!;
    i -= this.head.length;
    return i < this.tail.length ? this.tail[i]! : this.extra[i - this.tail.length]!;
  }

  /** Entries from `from` to the end (the part that still has to be fed). */
  from(from: number): number[] {
    const out: number[] = [];
    for (let i = from; i < this.length; i++) out.push(this.at(i));
    return out;
  }
}

/** Longest common prefix of a model's cached ids and `seq`, given the first `known` entries agree. */
function commonPrefix(cached: readonly number[], seq: Joined, known = 0): number {
  let i = Math.min(known, cached.length, seq.length);
  while (i < cached.length && i < seq.length && cached[i] === seq.at(i)) i++;
  return i;
}

/** A drafted position: the token, the row that proposed it, its byte offset. */
interface Drafted {
  id: number;
  /** The drafter's scored row that proposed it (`id` is its greedy choice, or its draw when sampling). */
  score: RowScore;
  /** Sampling: the token's logit in that row. */
  logit?: number;
  offset: number;
  /** Index the token would have in the response. */
  index: number;
  /** Whether the token has been counted in the statistics (tokens drafted ahead are not, yet). */
  counted: boolean;
}

/** Runs one generation; `run()` yields committed text and returns the result. */
export class Generation {
  private readonly members: Member[];
  private readonly drafter: Member;
  private readonly verifiers: Member[];
  /** The verifiers' response tokenizations, in verifier order (for the stability gate). */
  private readonly verifierTokens: ResponseTokenization[];
  private readonly bytes = new ByteBuffer();
  private readonly text: ResponseText;
  /** Committed drafter ids of the response (EOS excluded). */
  private readonly ids: number[] = [];
  /**
   * How many ids of the drafter's response sequence (committed, then drafted/carried) its cache
   * holds after the prompt; -1 until the first feed (the cache may hold an earlier prompt).
   */
  private cachedIds = -1;
  /** Drafted tokens carried into the next cycle. */
  private carry: Drafted[] = [];
  /**
   * Committed response length at the last verification: the text verifiers tokenized then and
   * the text they tokenize next agree at least this far.
   */
  private verifiedBase = 0;
  private readonly trace: TraceRecord[] = [];
  private readonly stats: EnsembleStats;
  private finish: FinishReason | null = null;
  private readonly started = performance.now();
  /** 1 once the drafter committed end-of-sequence (it counts as a generated token). */
  private eosGenerated = 0;
  /** Most drafter tokens this generation may commit. */
  private readonly budget: number;
  /**
   * Bytes at the start of the drafter's text that are not part of the response: the dummy-prefix
   * space a sentencepiece drafter's first token carries where its own response encoding adds one
   * (" Omar" where a byte-level model writes "Omar"). Verifiers see the response without it.
   */
  private lead = 0;
  /** 1 when the drafter's response encoding in its prompt context starts with a dummy space. */
  private readonly drafterAddsSpace: number;
  /** Whether the drafter drafts ahead while verifiers work (SAFE, some member in a worker). */
  private readonly pipelined: boolean;
  /** When sampling: the temperature and cut, and the generation's random numbers. */
  private readonly sampling: { truncation: Truncation; random: SamplingRandom; cut: boolean } | null;

  constructor(
    models: readonly EnsembleMember[],
    prompts: readonly ModelPrompt[],
    drafterIndex: number,
    private readonly options: ResolvedOptions,
    private readonly gacUnion: () => GacUnion,
  ) {
    const k = models.length;
    const weights = options.weights ?? models.map(() => 1 / k);
    this.members = models.map((lm, i) => ({
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
    this.drafter = this.members[drafterIndex]!;
    this.verifiers = this.members.filter((m) => m !== this.drafter);
    this.verifierTokens = this.verifiers.map((v) => v.tokens!);
    this.text = new ResponseText(this.bytes, options.stop);
    this.drafterAddsSpace = this.drafter.addsSpace ? 1 : 0;
    // Stop at the smallest context among the models (verifier tokenizations may run a little
    // longer than the drafter's, hence the margin of one draft).
    const room = Math.min(...this.members.map((m) => m.lm.maxPositions - m.prompt.ids.length)) - options.draftLength - 1;
    this.budget = Math.max(1, Math.min(options.maxNewTokens, room));
    this.stats = {
      strategy: options.strategy,
      promptTokens: prompts.map((p) => p.ids.length),
      generatedTokens: 0,
      draftedTokens: 0,
      acceptedTokens: 0,
      ensembledTokens: 0,
      ensembleRatePct: 0,
      cycles: 0,
      forwardPasses: models.map(() => 0),
      time: { draftingMs: 0, verifyingMs: 0, tokenizingMs: 0, ensemblingMs: 0, totalMs: 0 },
    };
    this.pipelined = options.strategy === 'safe' && this.members.some((m) => m.lm.runsConcurrently);
    if (this.pipelined) this.stats.pipeline = { draftedAhead: 0, discarded: 0 };
    this.networkAtStart = models.map((m) => (m.stats ? { ...m.stats } : null));
    if (isSampling(options)) {
      const random = new SamplingRandom(options.seed ?? freshSeed());
      this.sampling = { truncation: { temperature: options.temperature, topK: options.topK, topP: options.topP }, random, cut: options.topK > 0 || options.topP < 1 };
      this.stats.sampling = { seed: random.seed, tested: 0, accepted: 0, rejected: 0 };
    } else this.sampling = null;
  }

  /** Remote members' request totals when the generation started (null for local ones). */
  private readonly networkAtStart: Array<MemberNetworkStats | null>;

  /** Yields text as it is committed; returns the result. */
  async *run(): AsyncGenerator<string, EnsembleResult> {
    const perToken = this.options.strategy !== 'safe';
    while (this.finish === null) {
      if (this.options.signal?.aborted) {
        this.finish = 'abort';
        break;
      }
      let committed: number[] | null;
      try {
        committed = perToken ? await this.perTokenStep() : await this.safeCycle();
      } catch (error) {
        // A remote member's read (UniTE's fill-in) stops when the signal fires: an abort.
        if (!this.options.signal?.aborted) throw error;
        this.finish = 'abort';
        break;
      }
      if (committed === null) break;
      this.stats.cycles++;
      this.commit(committed);
      const delta = this.text.release();
      if (delta) yield delta;
    }
    // A signal that fired during the last pass still wins: the caller asked to stop.
    if (this.options.signal?.aborted) this.finish = 'abort';
    const rest = this.text.finish();
    if (rest) yield rest;
    return this.result();
  }

  // ---- SAFE --------------------------------------------------------------------------------

  /** One draft–verify–ensemble cycle; returns the ids to commit, or null when aborted. */
  private async safeCycle(): Promise<number[] | null> {
    const o = this.options;
    const budget = this.budget - this.ids.length;
    const n = Math.min(o.draftLength, budget);
    const base = this.bytes.length;

    // 1. Draft. Tokens carried over from the last cycle (drafted after a position whose
    // ensemble kept the drafter's own token, or ahead while the verifiers worked) are still the
    // drafter's greedy continuation.
    const drafted: Drafted[] = this.carry.slice(0, n);
    this.carry = [];
    if (!(await this.draftInto(drafted, n, false))) return null;
    // Tokens drafted ahead count (as drafted tokens and drafter passes) once they enter a chunk,
    // as they would have been drafted then: statistics equal those of sequential execution.
    for (const d of drafted) {
      if (d.counted) continue;
      d.counted = true;
      this.stats.draftedTokens++;
      this.drafter.forwardPasses++;
    }
    if (this.ids.length === 0) this.lead = this.leadOf(drafted[0]!.id);
    const chunk = drafted.filter((d) => !this.drafter.vocab.isEos(d.id)).map((d) => this.drafter.lm.tokenizer.tokenBytes(d.id));
    const candidate = this.bytes.with(chunk);
    const response = candidate.subarray(this.lead);

    // While the verifiers score this chunk, the drafter drafts the next one, as if this one will
    // be accepted whole (it stops when the verifiers are done). Only worth it when some member
    // runs in a worker: inline sessions run one at a time whatever is asked.
    const chain = [...drafted];
    let verifying = true;
    const ahead = this.pipelined && !this.drafter.vocab.isEos(drafted[drafted.length - 1]!.id)
      ? this.draftInto(chain, drafted.length + Math.min(o.draftLength, budget - drafted.length), true, () => !verifying)
      : Promise.resolve(true);

    // 2–3. Verifiers re-tokenize the candidate text and score it in one pass each, all at once.
    const t0 = performance.now();
    const changed = this.verifiers.map((v) => v.tokens!.update(response, this.verifiedBase, o.recomputeCaches));
    this.stats.time.tokenizingMs += performance.now() - t0;
    const chunkStart = Math.max(0, base - this.lead);
    const verification = this.allVerifiers((v, vi) => {
      // Rows are needed for the verifier tokens that start at or after the chunk start, and for
      // the token that straddles it (the scan aligns to it when the stability gate is off).
      const P = v.prompt.ids.length;
      return this.verifierRows(v, changed[vi]!, P + Math.max(0, firstTokenAtOrAfter(v.tokens!, chunkStart) - 1), 'all');
    }).finally(() => (verifying = false));
    // Both must settle before anything else touches the models.
    const [scoredChunk, draftedAhead] = await Promise.allSettled([verification, ahead]);
    if (scoredChunk.status === 'rejected') throw scoredChunk.reason;
    if (draftedAhead.status === 'rejected') throw draftedAhead.reason;
    const rowAts = scoredChunk.value;
    if (!rowAts || !draftedAhead.value) return null;
    const verified = rowAts.map((rowAt, vi) => {
      const P = this.verifiers[vi]!.prompt.ids.length;
      return { rowOf: (k: number) => rowAt(P + k) };
    });
    this.verifiedBase = Math.max(0, base - this.lead);

    // 4. Scan for the earliest stable, contested position.
    let t1 = performance.now();
    let trigger = -1;
    let aligned: number[][] = [];
    // Sampling: the ids the acceptance test committed at the trigger (a rejection's draw).
    let sampled: number[] | null = null;
    for (let j = 0; j < drafted.length && trigger < 0; j++) {
      const d = drafted[j]!;
      const eos = this.drafter.vocab.isEos(d.id);
      // The token that carries the drafter's dummy-prefix space has no counterpart in the
      // verifiers' texts (they start after it): it stands as drafted.
      if (this.lead > 0 && d.offset === 0) continue;
      const at = this.alignAt(d.offset - this.lead, eos, response);
      if (!at) continue; // unstable: a verifier has no token boundary here
      const scoredRows = at.map((k, vi) => verified[vi]!.rowOf(k));
      const ownIds = at.map((k, vi) => (eos ? this.verifiers[vi]!.vocab.eosId! : this.verifiers[vi]!.tokens!.ids[k]!));
      if (this.sampling) {
        // Sampling: the gates that skip by agreement give way to the acceptance test, which runs
        // at every stable position (skipping one would bias the committed tokens).
        this.stats.time.tokenizingMs += performance.now() - t1;
        const outcome = await this.acceptanceAt(d, scoredRows, ownIds, candidate, o.baseEnsembler === 'gac');
        t1 = performance.now();
        if (outcome === null) continue;
        trigger = j;
        sampled = outcome;
        break;
      }
      const argmaxIsOwn = scoredRows.map((r, vi) => this.sameChoice(this.verifiers[vi]!.vocab, r.best, ownIds[vi]!));
      // Rule (a) needs only argmaxes; probabilities (normalizers: a pass of exponentials over
      // each row, where the row is held) only when it fails.
      if (o.unanimitySkip && argmaxIsOwn.every(Boolean)) continue;
      const ownProbabilities = await Promise.all([probabilityOf(d.score, d.id), ...scoredRows.map((r, vi) => probabilityOf(r, ownIds[vi]!))]);
      const pDraft = ownProbabilities[0]!;
      const weights = [this.drafter.weight, ...this.verifiers.map((v) => v.weight)];
      if (consensusSkip({ ownProbabilities, verifierArgmaxIsOwn: argmaxIsOwn, weights }, { threshold: o.consensusThreshold, unanimity: false })) continue;
      if (o.baseEnsembler === 'gac' && pDraft >= o.gacDrafterGate) continue;
      trigger = j;
      aligned = [at, ownIds];
    }
    this.stats.time.tokenizingMs += performance.now() - t1;

    // 5–6. Ensemble at the trigger, or keep the whole chunk.
    let commit: number[];
    if (trigger < 0) {
      commit = drafted.map((d) => d.id);
      this.stats.acceptedTokens += drafted.length;
    } else if (sampled) {
      commit = drafted.slice(0, trigger).map((x) => x.id).concat(sampled);
      this.stats.acceptedTokens += trigger;
    } else {
      const d = drafted[trigger]!;
      const [at, ownIds] = aligned as [number[], number[]];
      const rows = at.map((k, vi) => verified[vi]!.rowOf(k));
      const appended = await this.ensemble(d, rows, ownIds, candidate, this.options.baseEnsembler === 'gac');
      commit = drafted.slice(0, trigger).map((x) => x.id).concat(appended);
      this.stats.acceptedTokens += trigger;
      this.stats.ensembledTokens++;
    }
    // An ensemble that kept the drafter's own token leaves the rest of the draft valid (and what
    // was drafted ahead): carry it. Otherwise the work ahead is dropped.
    const keepsDraft = trigger < 0 || (commit.length === trigger + 1 && commit[trigger] === drafted[trigger]!.id);
    if (keepsDraft) this.carry = chain.slice(commit.length);
    if (this.pipelined) {
      const ahead = chain.length - drafted.length;
      this.stats.pipeline!.draftedAhead += ahead;
      if (!keepsDraft) this.stats.pipeline!.discarded += ahead;
    }
    // The drafter's cache holds the committed ids plus the drafted ones it fed; keep what the
    // new sequence (commit, then carried tokens) shares with it.
    const next = commit.concat(this.carry.map((d) => d.id));
    const fed = this.cachedIds - this.ids.length;
    let keep = 0;
    while (keep < fed && keep < next.length && next[keep] === chain[keep]!.id) keep++;
    this.drafter.lm.crop(this.drafter.prompt.ids.length + this.ids.length + keep);
    this.cachedIds = this.ids.length + keep;
    return commit;
  }

  /**
   * Drafts greedily onto `list` until it holds `until` tokens or ends with EOS (or `stop()`
   * says so); false when aborted. Tokens drafted `ahead` are not counted yet (see safeCycle).
   */
  private async draftInto(list: Drafted[], until: number, ahead: boolean, stop: () => boolean = () => false): Promise<boolean> {
    const tok = this.drafter.lm.tokenizer;
    // A served drafter drafts a chunk per request greedily; sampling draws each token here.
    if (this.drafter.lm.draft && !this.options.recomputeCaches && !this.sampling) return this.draftChunks(list, until, ahead, stop);
    while (list.length < until && !stop()) {
      const last = list[list.length - 1];
      if (last && this.drafter.vocab.isEos(last.id)) break;
      const next = await this.drafterRow(list.map((d) => d.id), !ahead);
      if (!next) return false;
      const offset = last ? last.offset + tok.tokenBytes(last.id).length : this.bytes.length;
      const index = this.ids.length + list.length;
      // Tokens drafted ahead belong to the next cycle: they take that cycle's numbers.
      const drawn = await this.drawDrafted(next, this.stats.cycles + (ahead ? 1 : 0), index);
      list.push({ id: drawn.id, score: next, logit: drawn.logit, offset, index, counted: !ahead });
      if (!ahead) this.stats.draftedTokens++;
    }
    return true;
  }

  /**
   * draftInto for a member that drafts several tokens per call ({@link EnsembleMember.draft}):
   * the same tokens and counts as drafting one by one (each token counts as a pass).
   */
  private async draftChunks(list: Drafted[], until: number, ahead: boolean, stop: () => boolean): Promise<boolean> {
    const lm = this.drafter.lm;
    const tok = lm.tokenizer;
    const P = this.drafter.prompt.ids.length;
    while (list.length < until && !stop()) {
      const last = list[list.length - 1];
      if (last && this.drafter.vocab.isEos(last.id)) break;
      if (this.options.signal?.aborted) {
        this.finish = 'abort';
        return false;
      }
      const seq = new Joined(this.drafter.prompt.ids, this.ids, list.map((d) => d.id));
      const from = Math.min(commonPrefix(lm.tokens, seq, this.cachedIds < 0 ? 0 : Math.min(lm.length, P + this.cachedIds)), seq.length - 1);
      lm.crop(from);
      const t0 = performance.now();
      let rows: Scores;
      try {
        const signal = this.options.signal;
        rows = await lm.draft!(seq.from(from), until - list.length, { topK: this.scoringTopK(this.drafter), ...(signal ? { signal } : {}) });
      } catch (error) {
        if (this.options.signal?.aborted) {
          this.finish = 'abort';
          return false;
        }
        throw error;
      }
      this.stats.time.draftingMs += performance.now() - t0;
      this.cachedIds = seq.length - P + rows.rows;
      for (let r = 0; r < rows.rows; r++) {
        const row = rows.at(r);
        const prev = list[list.length - 1];
        const offset = prev ? prev.offset + tok.tokenBytes(prev.id).length : this.bytes.length;
        list.push({ id: row.best, score: row, offset, index: this.ids.length + list.length, counted: !ahead });
        if (!ahead) {
          this.stats.draftedTokens++;
          this.drafter.forwardPasses++;
        }
        if (this.drafter.vocab.isEos(row.best)) break;
      }
    }
    return true;
  }

  /**
   * Aligned verifier token index at byte `offset` for each verifier, or null when the position
   * is not stable (with the stability gate off: the token covering the position).
   */
  private alignAt(offset: number, eos: boolean, candidate: Uint8Array): number[] | null {
    if (this.options.stabilityGate) return stableAlignment(candidate, offset, this.verifierTokens, eos);
    const out: number[] = [];
    for (const v of this.verifiers) {
      const t = v.tokens!;
      let k = t.tokenStartingAt(offset);
      if (k >= 0 && !eos && k >= t.ids.length) k = -1; // the text ends here for this verifier
      if (k < 0) {
        k = firstTokenAtOrAfter(t, offset + 1) - 1; // the token that covers the offset
        if (k < 0 || k >= t.ids.length) return null;
      }
      out.push(k);
    }
    return out;
  }

  /** 1 when `firstId`, the drafter's first token, carries the dummy space of its response encoding. */
  private leadOf(firstId: number): number {
    if (this.drafterAddsSpace === 0 || this.drafter.vocab.isEos(firstId)) return 0;
    return this.drafter.lm.tokenizer.tokenBytes(firstId)[0] === 0x20 ? 1 : 0;
  }

  private sameChoice(vocab: Vocabulary, choice: number, own: number): boolean {
    return choice === own || (vocab.isEos(choice) && vocab.isEos(own));
  }

  // ---- Per-token strategies ----------------------------------------------------------------

  /** One token of `single`, `every-token` or `gac-threshold`. */
  private async perTokenStep(): Promise<number[] | null> {
    const o = this.options;
    const next = await this.drafterRow();
    if (!next) return null;
    // every-token draws every token from the ensemble: the drafter's own draw (a read of its row)
    // is needed only for the first token, which may carry its dummy-prefix space (see `lead`).
    const { id, logit, kept } = await this.drawDrafted(next, this.stats.cycles, this.ids.length, o.strategy === 'every-token' && this.ids.length > 0);
    this.stats.draftedTokens++;
    let ensembleHere = o.strategy === 'every-token';
    if (o.strategy === 'gac-threshold') {
      // The drafter's confidence: the probability of its best token (tempered, when sampling).
      const top = kept ? keptProbability(kept, next.best, next.max) : Math.exp(next.max - (await next.logNormalizer()));
      ensembleHere = top < o.gacDrafterGate;
    }
    if (this.ids.length === 0) this.lead = this.leadOf(id);
    // The first token of a sentencepiece drafter carries its dummy-prefix space (see `lead`).
    if (!ensembleHere || (this.ids.length === 0 && this.lead > 0)) {
      this.stats.acceptedTokens++;
      return [id];
    }
    // Verifiers: the distribution after their tokenization of the committed text, wherever it ends.
    const base = this.bytes.length;
    const t0 = performance.now();
    const changed = this.verifiers.map((v) => v.tokens!.update(this.bytes.view().subarray(this.lead), this.verifiedBase, o.recomputeCaches));
    this.stats.time.tokenizingMs += performance.now() - t0;
    const ends = this.verifiers.map((v) => v.prompt.ids.length + v.tokens!.ids.length);
    const rowAts = await this.allVerifiers((v, vi) => this.verifierRows(v, changed[vi]!, ends[vi]!, 'last'));
    if (!rowAts) return null;
    const rows = rowAts.map((rowAt, vi) => rowAt(ends[vi]!));
    this.verifiedBase = Math.max(0, base - this.lead);
    const own = rows.map((r) => r.best);
    const appended = await this.ensemble({ id, score: next, logit, offset: base, index: this.ids.length, counted: true }, rows, own, this.bytes.view(), o.strategy === 'gac-threshold');
    this.stats.ensembledTokens++;
    return appended;
  }

  // ---- Shared pieces -----------------------------------------------------------------------

  /**
   * Builds the ensemble at a position, records it, and returns the drafter ids to append: the
   * decision's winner, or when sampling a draw from the ensemble distribution.
   */
  private async ensemble(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, gac: boolean): Promise<number[]> {
    const point = await this.ensemblePoint(d, verifierRows, text, gac);
    const t0 = performance.now();
    let entry = point.decision.winner;
    let sampling: TraceSampling | undefined;
    if (this.sampling) {
      const p = ensembleProbabilities(point.decision);
      const uniform = this.sampling.random.uniform(Stream.Ensemble, this.stats.cycles, d.index);
      entry = drawIndex(p, uniform);
      sampling = { probabilities: p, draw: { from: 'ensemble', uniform, probability: p[entry]! } };
    }
    const appended = this.appendedFor(point, entry, d);
    this.stats.time.ensemblingMs += performance.now() - t0;
    if (this.options.trace) await this.record(d, point.scores, verifierOwn, point.decision, entry, appended, gac, sampling);
    return appended;
  }

  /**
   * SAFE's acceptance test at a stable position (sampling): the drafted token stands with
   * probability min(1, P_ens / P_draft); otherwise a token is drawn by the rejection rule.
   * Returns null when the token stands, else the drafter ids to append.
   */
  private async acceptanceAt(d: Drafted, verifierRows: RowScore[], verifierOwn: number[], text: Uint8Array, gac: boolean): Promise<number[] | null> {
    const sampling = this.sampling!;
    const point = await this.ensemblePoint(d, verifierRows, text, gac);
    const t0 = performance.now();
    const { keys } = point.decision;
    const p = ensembleProbabilities(point.decision);
    const kept = await d.score.truncated(sampling.truncation);
    const q = await this.drafterStringProbabilities(d, keys, kept);
    const drafted = keys.indexOf(this.drafter.vocab.key(d.id));
    const qDrafted = keptProbability(kept, d.id, d.logit!);
    const acceptUniform = sampling.random.uniform(Stream.Accept, this.stats.cycles, d.index);
    const rejectionUniform = sampling.random.uniform(Stream.Rejection, this.stats.cycles, d.index);
    const outcome: AcceptanceOutcome = acceptanceTest(p, q, drafted, qDrafted, this.options.rejectionRule, acceptUniform, rejectionUniform);
    const counts = this.stats.sampling!;
    counts.tested++;
    this.stats.ensembledTokens++;
    if (outcome.accepted) counts.accepted++;
    else counts.rejected++;
    const entry = outcome.drawn ? outcome.drawn.entry : drafted;
    const appended = outcome.accepted ? [d.id] : this.appendedFor(point, entry, d);
    this.stats.time.ensemblingMs += performance.now() - t0;
    if (this.options.trace) {
      const trace: TraceSampling = {
        probabilities: p,
        draftProbabilities: q,
        acceptance: { draftProbability: qDrafted, ensembleProbability: drafted >= 0 ? p[drafted]! : 0, acceptProbability: outcome.acceptProbability, uniform: acceptUniform, accepted: outcome.accepted },
        ...(outcome.drawn ? { draw: { from: outcome.drawn.from, uniform: rejectionUniform, probability: outcome.drawn.probability } } : {}),
      };
      await this.record(d, point.scores, verifierOwn, point.decision, outcome.accepted && drafted < 0 ? -1 : entry, appended, gac, trace);
    }
    return outcome.accepted ? null : appended;
  }

  /**
   * The drafter's probability of each union string under its tempered, truncated distribution:
   * the probability of the token whose bytes are exactly that string (0 when it has none).
   */
  private async drafterStringProbabilities(d: Drafted, keys: readonly string[], kept: KeptSet): Promise<Float64Array> {
    const vocab = this.drafter.vocab;
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

  /** The drafter's token at a row: its greedy choice, or when sampling its draw. */
  private async drawDrafted(row: RowScore, cycle: number, index: number, greedy = false): Promise<{ id: number; logit: number; kept: KeptSet | null }> {
    if (!this.sampling || greedy) return { id: row.best, logit: row.max, kept: null };
    return row.draw(this.sampling.truncation, this.sampling.random.uniform(Stream.Draft, cycle, index));
  }

  /** The kept set of a member's row when sampling (a whole row without a cut keeps everything: no read). */
  private async keptOf(m: Member, row: RowScore): Promise<KeptSet> {
    const t = this.sampling!.truncation;
    if (!this.sampling!.cut && m.lm.wholeRows) return { temperature: t.temperature, all: true, count: row.width, cutoffLogit: -Infinity, cutoffId: row.width - 1, ids: null, logNormalizer: NaN };
    return row.truncated(t);
  }

  /** The drafter ids that write union entry `entry` after the context (the drafted token when none do). */
  private appendedFor(point: EnsemblePoint, entry: number, d: Drafted): number[] {
    const appended = this.drafter.vocab.appendIds(point.decision.keys[entry]!, point.context, point.gac);
    return appended.length === 0 ? [d.id] : appended;
  }

  /**
   * The ensemble distribution and greedy decision at a position. The members' rows are read
   * where their sessions hold them: UniTE reads the logits of its fill-in ids, GaC the whole
   * rows; when sampling, each member's distribution is tempered and cut first.
   */
  private async ensemblePoint(d: Drafted, verifierRows: RowScore[], text: Uint8Array, gac: boolean): Promise<EnsemblePoint> {
    const t0 = performance.now();
    const o = this.options;
    const context = contextBefore(text, d.offset);
    // At the response start a verifier's dummy-prefix space is not part of the response (the
    // drafter's own first token is never ensembled when it carries one: see `lead`).
    const responseStart = d.offset - this.lead === 0;
    const scores = [d.score, ...verifierRows];
    const members = [this.drafter, ...this.verifiers];
    const views: Array<Omit<ModelView, 'row'>> = members.map((m, i) => ({ vocab: m.vocab, weight: m.weight, context, dummySpace: i > 0 && responseStart && m.addsSpace }));
    const keptSets = this.sampling ? Promise.all(scores.map((r, i) => this.keptOf(members[i]!, r))) : Promise.resolve(null);
    let dist: EnsembleDistribution;
    if (gac) {
      const [rows, kept] = await Promise.all([Promise.all(scores.map((r) => r.row())), keptSets]);
      const used = kept ? rows.map((row, i) => truncatedRow(row, kept[i]!)) : rows;
      dist = this.gacUnion().distribution(this.viewsInModelOrder(views.map((v, i) => ({ ...v, row: used[i]! }))), o.unionTopK);
    } else {
      const union: UnionMember[] = views.map((v, i) => ({ ...v, top: scores[i]!.top(o.unionTopK) }));
      const plan = planUnite(union, scores.map((r) => r.width));
      const [fills, kept] = await Promise.all([Promise.all(scores.map((r, i) => r.logitsOf(plan.fills[i]!.map((f) => f.id)))), keptSets]);
      dist = finishUnite(plan, fills, union, kept ?? undefined);
    }
    const weights = gac ? this.members.map((m) => m.weight) : views.map((v) => v.weight);
    const decision = decide(dist, topKeys(this.drafter.vocab, d.score.top(o.unionTopK).ids, o.unionTopK), weights, o.sharpening);
    this.stats.time.ensemblingMs += performance.now() - t0;
    return { decision, context, scores, gac };
  }

  /** GaC's union is indexed in model order; UniTE's views put the drafter first. */
  private viewsInModelOrder(views: ModelView[]): ModelView[] {
    return this.members.map((m) => (m === this.drafter ? views[0]! : views[1 + this.verifiers.indexOf(m)]!));
  }

  private async record(d: Drafted, scores: RowScore[], verifierOwn: number[], decision: EnsembleDecision, entry: number, appended: number[], gac: boolean, sampling?: TraceSampling): Promise<void> {
    const ownIds = [d.id, ...verifierOwn];
    const members = [this.drafter, ...this.verifiers];
    const probabilities = await Promise.all(scores.map((r, i) => probabilityOf(r, ownIds[i]!)));
    const models = scores.map((r, i) => {
      const vocab = members[i]!.vocab;
      return { model: members[i]!.lm.name, token: keyText(vocab.key(ownIds[i]!)), probability: probabilities[i]!, argmax: keyText(vocab.key(r.best)) };
    });
    const order = [...decision.scores.keys()].sort((a, b) => decision.scores[b]! - decision.scores[a]!).slice(0, 20);
    const modelOrder = gac ? this.members : members;
    const permute = (perModel: Float64Array[], e: number) => members.map((m) => perModel[modelOrder.indexOf(m)]![e]!);
    this.trace.push({
      tokenIndex: d.index,
      byteOffset: d.offset,
      cycle: this.stats.cycles,
      drafted: { text: keyText(this.drafter.vocab.key(d.id)), probability: models[0]!.probability },
      models,
      meanOwnProbability: models.reduce((s, m, i) => s + members[i]!.weight * m.probability, 0),
      candidates: order.map((e) => ({
        text: keyText(decision.keys[e]!),
        average: decision.average[e]!,
        score: decision.scores[e]!,
        perModel: permute(decision.perModel, e),
        ...(sampling ? { probability: sampling.probabilities[e]! } : {}),
        ...(sampling?.draftProbabilities ? { draftProbability: sampling.draftProbabilities[e]! } : {}),
      })),
      sharpened: decision.sharpened,
      bareSpaceGaveWay: decision.bareSpaceGaveWay !== null,
      winner: { text: entry >= 0 ? keyText(decision.keys[entry]!) : keyText(this.drafter.vocab.key(d.id)), ids: appended },
      ...(sampling?.acceptance ? { acceptance: sampling.acceptance } : {}),
      ...(sampling?.draw ? { draw: sampling.draw } : {}),
    });
  }

  /**
   * Brings a verifier's cache to prompt ++ its response tokens and returns the rows that
   * predict each position from `need` on (`rowAt(q)` predicts the token at sequence position q).
   * Only the uncached suffix is fed; when the cache already ends at `need` with the last row of
   * the previous pass predicting it, that row is reused instead of cropping and re-feeding.
   */
  private async verifierRows(v: Member, firstChanged: number, need: number, rows: 'all' | 'last'): Promise<((q: number) => RowScore) | null> {
    const P = v.prompt.ids.length;
    const seq = new Joined(v.prompt.ids, v.tokens!.ids);
    const recompute = this.options.recomputeCaches;
    // What the cache held before this generation's first pass is unknown (an earlier prompt):
    // compare it from the start once; after that the tokenization says what changed.
    const known = v.lastRowAt < 0 ? 0 : Math.min(v.lm.length, P + firstChanged);
    const lcp = recompute ? 0 : commonPrefix(v.lm.tokens, seq, known);
    const saved = !recompute && v.lastRow !== null && lcp === v.lm.length && v.lastRowAt === lcp && need >= lcp ? v.lastRow : null;
    const from = saved ? lcp : Math.max(0, Math.min(lcp, need - 1, seq.length - 1));
    v.lm.crop(from);
    let scores: Scores | null = null;
    const fed = seq.length - from;
    // Only the rows that predict positions need..seq.length are read: ask for just those, so a
    // first pass over the whole prompt does not return a row per prompt token.
    const kept = rows === 'last' ? 1 : Math.max(1, Math.min(fed, seq.length - need + 1));
    if (from < seq.length) {
      // Each row comes with the logit of the token that follows it in this tokenization (the
      // verifier's own token there; end-of-sequence after the last), which the gates read.
      const asked = Array.from({ length: kept }, (_, i) => {
        const q = seq.length - kept + 1 + i;
        return q < seq.length ? seq.at(q) : (v.vocab.eosId ?? -1);
      });
      scores = await this.score(v, seq.from(from), kept, asked, saved ? from : need, false);
      if (!scores) return null;
      v.lastRow = scores.at(-1);
      v.lastRowAt = seq.length;
    }
    const out = scores;
    return (q: number) => {
      if (saved && q === from) return saved;
      if (rows === 'last') return out!.at(-1);
      const r = q - 1 - from - (fed - kept);
      if (r < 0) throw new Error(`internal: row for position ${q} was not requested (need ${need}, from ${from})`);
      return out!.at(r);
    };
  }

  /**
   * The drafter's next-token row after prompt ++ committed response ++ `extra` (drafted ids),
   * feeding only what its cache lacks. `cachedIds` says how much of response ++ extra is cached.
   */
  private async drafterRow(extra: readonly number[] = [], countPass = true): Promise<RowScore | null> {
    const lm = this.drafter.lm;
    const P = this.drafter.prompt.ids.length;
    const seq = new Joined(this.drafter.prompt.ids, this.ids, extra);
    let from: number;
    if (this.options.recomputeCaches) from = 0;
    else from = Math.min(commonPrefix(lm.tokens, seq, this.cachedIds < 0 ? 0 : Math.min(lm.length, P + this.cachedIds)), seq.length - 1);
    lm.crop(from);
    // Rows of tokens already committed are not read again.
    const scores = await this.score(this.drafter, seq.from(from), 1, null, P + this.ids.length, true, countPass);
    if (!scores) return null;
    this.cachedIds = seq.length - P;
    return scores.at(-1);
  }

  /**
   * Runs `score` for every verifier at once (each model's session runs on its own) and waits
   * for all of them, also when one fails: a pass still running must not outlive the generation
   * that holds the models. Null when aborted; the first failure is rethrown.
   */
  private async allVerifiers<T>(score: (v: Member, vi: number) => Promise<T | null>): Promise<T[] | null> {
    const t0 = performance.now();
    const settled = await Promise.allSettled(this.verifiers.map((v, vi) => score(v, vi)));
    this.stats.time.verifyingMs += performance.now() - t0;
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const values = settled.map((r) => (r as PromiseFulfilledResult<T | null>).value);
    return values.some((v) => v === null) ? null : (values as T[]);
  }

  /**
   * One scoring pass (top-k per row, full rows held by the member) with abort check (and
   * timing, when drafting); null when aborted.
   */
  private async score(m: Member, ids: number[], rows: number, asked: number[] | null, holdFrom: number, drafting: boolean, countPass = true): Promise<Scores | null> {
    if (this.options.signal?.aborted) {
      this.finish = 'abort';
      return null;
    }
    const t0 = performance.now();
    // Recomputing caches crops every model to nothing before each pass, which drops held rows:
    // then every row comes back whole instead.
    const full = this.options.recomputeCaches && m.lm.wholeRows;
    const signal = this.options.signal;
    let scores: Scores;
    try {
      scores = await m.lm.score(ids, { rows, topK: this.scoringTopK(m), ...(asked ? { asked } : {}), holdFrom, full, ...(signal ? { signal } : {}) });
    } catch (error) {
      // A member waiting on a server stops when the signal fires: that is the abort, not a fault.
      if (signal?.aborted) {
        this.finish = 'abort';
        return null;
      }
      throw error;
    }
    if (drafting) this.stats.time.draftingMs += performance.now() - t0;
    if (countPass) m.forwardPasses++;
    return scores;
  }

  /**
   * Best ids returned per row: the UniTE union size; when sampling with a larger cut, a served
   * member returns that many (its rows are known only through them).
   */
  private scoringTopK(m: Member): number {
    const o = this.options;
    return this.sampling && !m.lm.wholeRows && o.topK > o.unionTopK ? o.topK : o.unionTopK;
  }

  /** Appends committed ids to the response and checks the stop conditions. */
  private commit(ids: number[]): void {
    const tok = this.drafter.lm.tokenizer;
    for (const id of ids) {
      if (this.drafter.vocab.isEos(id)) {
        this.finish = 'eos';
        this.eosGenerated = 1;
        break;
      }
      if (this.ids.length >= this.budget) break;
      this.ids.push(id);
      this.bytes.append(tok.tokenBytes(id));
      if (this.ids.length === 1 && tok.dummyPrefixBytes('a') === 1 && this.bytes.view()[0] === 0x20) {
        // A sentencepiece drafter's first word carries a leading space: not shown.
        this.text.setHidden(1);
      }
    }
    if (this.text.checkStops()) this.finish = 'stop';
    else if (this.finish === null && this.ids.length >= this.budget) this.finish = 'length';
  }

  private result(): EnsembleResult {
    const s = this.stats;
    s.generatedTokens = this.ids.length + this.eosGenerated;
    s.ensembleRatePct = s.generatedTokens > 0 ? (100 * s.ensembledTokens) / s.generatedTokens : 0;
    s.forwardPasses = this.members.map((m) => m.forwardPasses);
    if (this.networkAtStart.some((x) => x !== null)) {
      s.network = this.members.map((m, i) => {
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
    return { text: this.text.text(), finishReason: this.finish ?? 'length', stats: s, ...(this.options.trace ? { trace: this.trace } : {}) };
  }
}

/** What {@link Generation.ensemblePoint} returns. */
interface EnsemblePoint {
  decision: EnsembleDecision;
  /** Text before the position (union strings are tokenized in it). */
  context: string;
  /** The members' rows, drafter first. */
  scores: RowScore[];
  gac: boolean;
}

/** Probability of `id` under a scored row (reads the row's normalizer where it is held). */
async function probabilityOf(r: RowScore, id: number): Promise<number> {
  const [logit, normalizer] = await Promise.all([r.logitOf(id), r.logNormalizer()]);
  return Math.exp(logit - normalizer);
}

/** Index of the first token of `t` that starts at or after byte `offset`. */
function firstTokenAtOrAfter(t: ResponseTokenization, offset: number): number {
  if (offset <= 0) return 0;
  // Token k starts at ends[k-1]; find the first k with ends[k-1] >= offset.
  let lo = 0;
  let hi = t.ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t.ends[mid]! < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo + 1 > t.ids.length ? t.ids.length : lo + 1;
}

/** Up to CONTEXT_BYTES of text before `offset`, starting on a character boundary. */
function contextBefore(text: Uint8Array, offset: number): string {
  let from = Math.max(0, offset - CONTEXT_BYTES);
  while (from < offset && !isCharBoundary(text, from)) from++;
  return new TextDecoder().decode(text.subarray(from, offset));
}
