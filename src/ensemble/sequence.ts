/**
 * What the pieces of one generation share: the members as the generation sees them, the
 * committed response, and small helpers over id sequences and rows. The pieces (proposer.ts,
 * scorer.ts, decider.ts, recorder.ts) read and update one {@link GenerationState}; the loop in
 * generation.ts drives them.
 * @module
 */
import type { SequenceModel } from '../member/member.js';
import type { RowScore, Scores } from '../member/scores.js';
import type { Truncation } from '../member/truncation.js';
import { isCharBoundary } from '../text/bytes.js';
import { encodeContinuation, type ResponseTokenization } from '../text/continuation.js';
import type { TextConstraint } from './constraint.js';
import type { ResolvedOptions } from './options.js';
import type { ModelPrompt } from './prompt.js';
import type { ByteBuffer } from './responseText.js';
import type { SamplingRandom } from './sampling.js';
import type { EnsembleStats, FinishReason } from './types.js';
import type { Vocabulary } from './vocabulary.js';

/** A model taking part in one generation. */
export interface Member {
  lm: SequenceModel;
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

/** A drafted position: the token, the row that proposed it, its byte offset. */
export interface Drafted {
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

/** Sampling settings of a generation: the temperature and cut, and its random numbers. */
export interface SamplingState {
  /** The drafter's draws: the temperature and cut. */
  truncation: Truncation;
  /** How each member's distribution enters the ensemble: `truncation`, or at temperature 1 when the temperature applies to the ensemble (`temperatureAt: 'ensemble'`). */
  memberTruncation: Truncation;
  /** The power the ensemble distribution is raised to (then renormalized): 1, or 1 / temperature with `temperatureAt: 'ensemble'`. */
  ensembleExponent: number;
  random: SamplingRandom;
  /** Whether a top-k or top-p cut applies (else whole rows are kept). */
  cut: boolean;
}

/** The state one generation's pieces share. */
export interface GenerationState {
  readonly options: ResolvedOptions;
  readonly members: readonly Member[];
  readonly drafter: Member;
  readonly verifiers: readonly Member[];
  /** The committed response as the drafter writes it (its dummy-prefix space included: see `lead`). */
  readonly bytes: ByteBuffer;
  /** Committed drafter ids of the response (EOS excluded). */
  readonly ids: number[];
  /**
   * Bytes at the start of the drafter's text that are not part of the response: the dummy-prefix
   * space a sentencepiece drafter's first token carries where its own response encoding adds one
   * (" Omar" where a byte-level model writes "Omar"). Verifiers see the response without it.
   */
  lead: number;
  /**
   * Committed response length at the last verification: the text verifiers tokenized then and
   * the text they tokenize next agree at least this far.
   */
  verifiedBase: number;
  finish: FinishReason | null;
  readonly stats: EnsembleStats;
  readonly sampling: SamplingState | null;
  /** What the response may be (null: anything; nothing is computed for it). */
  readonly constraint: TextConstraint | null;
  /** Most drafter tokens the response may have (a constraint closes its text within them). */
  budget: number;
}

/** Tokens left to the budget's end for the token that starts at response byte `offset` (each byte past the committed text counted as a token: a bound). */
export function tokensLeftAt(state: GenerationState, offset: number): number {
  const committed = Math.max(0, state.bytes.length - state.lead);
  return state.budget - state.ids.length - Math.max(0, offset - committed);
}

/** Whether a tokenizer writes a dummy-prefix space before a response in this prompt context. */
export function responseAddsSpace(lm: SequenceModel, prompt: ModelPrompt): boolean {
  const tok = lm.tokenizer;
  const probe = encodeContinuation(tok, prompt.context, 'x') ?? encodeContinuation(tok, { text: '', special: null }, 'x');
  return !!probe && probe.ids.length > 0 && tok.tokenBytes(probe.ids[0]!)[0] === 0x20;
}

/** Two id arrays read as one sequence, without copying them (prompt ++ response). */
export class Joined {
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
export function commonPrefix(cached: readonly number[], seq: Joined, known = 0): number {
  let i = Math.min(known, cached.length, seq.length);
  while (i < cached.length && i < seq.length && cached[i] === seq.at(i)) i++;
  return i;
}

/** Probability of `id` under a scored row (reads the row's normalizer where it is held). */
export async function probabilityOf(r: RowScore, id: number): Promise<number> {
  const [logit, normalizer] = await Promise.all([r.logitOf(id), r.logNormalizer()]);
  return Math.exp(logit - normalizer);
}

/** Index of the first token of `t` that starts at or after byte `offset`. */
export function firstTokenAtOrAfter(t: ResponseTokenization, offset: number): number {
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

/** Bytes of context (before a position) used to tokenize candidate strings in context. */
const CONTEXT_BYTES = 48;

/** Up to CONTEXT_BYTES of text before `offset`, starting on a character boundary. */
export function contextBefore(text: Uint8Array, offset: number): string {
  let from = Math.max(0, offset - CONTEXT_BYTES);
  while (from < offset && !isCharBoundary(text, from)) from++;
  return new TextDecoder().decode(text.subarray(from, offset));
}

/**
 * One scoring pass of a member (top-k per row, full rows held by the member) with the abort
 * check; null when aborted (the state's finish then says so). Counts the pass unless told not to.
 */
export async function scorePass(
  state: GenerationState,
  m: Member,
  ids: number[],
  rows: number,
  asked: number[] | null,
  holdFrom: number,
  countPass = true,
): Promise<Scores | null> {
  const o = state.options;
  if (o.signal?.aborted) {
    state.finish = 'abort';
    return null;
  }
  // Recomputing caches crops every model to nothing before each pass, which drops held rows:
  // then every row comes back whole instead.
  const full = o.recomputeCaches && m.lm.wholeRows;
  const signal = o.signal;
  let scores: Scores;
  try {
    scores = await m.lm.score(ids, { rows, topK: scoringTopK(state, m), ...(asked ? { asked } : {}), holdFrom, full, ...(signal ? { signal } : {}) });
  } catch (error) {
    // A member waiting on a server stops when the signal fires: that is the abort, not a fault.
    if (signal?.aborted) {
      state.finish = 'abort';
      return null;
    }
    throw error;
  }
  if (countPass) m.forwardPasses++;
  return scores;
}

/**
 * Best ids returned per row: the UniTE union size; when sampling with a larger cut, a served
 * member returns that many (its rows are known only through them).
 */
export function scoringTopK(state: GenerationState, m: Member): number {
  const o = state.options;
  return state.sampling && !m.lm.wholeRows && o.topK > o.unionTopK ? o.topK : o.unionTopK;
}
