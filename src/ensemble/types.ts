/**
 * What a generation returns: text, why it stopped, statistics and the optional trace.
 * @module
 */
import type { MemberNetworkStats } from '../member/member.js';

/** Why generation ended. */
export type FinishReason = 'eos' | 'stop' | 'length' | 'abort';

/** Wall-clock milliseconds spent per phase. */
export interface PhaseTimes {
  /** Drafter forward passes. */
  draftingMs: number;
  /** Verifier forward passes. */
  verifyingMs: number;
  /** Re-tokenizing the response and aligning boundaries. */
  tokenizingMs: number;
  /** Building ensemble distributions and deciding. */
  ensemblingMs: number;
  /** Whole generation. */
  totalMs: number;
}

/** Per-generation statistics. */
export interface EnsembleStats {
  /** Strategy that ran. */
  strategy: string;
  /** Prompt tokens per model, in model order. */
  promptTokens: number[];
  /** Tokens the drafter committed (the response length in drafter tokens). */
  generatedTokens: number;
  /** Tokens the drafter proposed. */
  draftedTokens: number;
  /** Proposed tokens kept as drafted. */
  acceptedTokens: number;
  /** Positions where an ensemble distribution decided the token. */
  ensembledTokens: number;
  /** ensembledTokens / generatedTokens in percent: the paper's E/T. */
  ensembleRatePct: number;
  /** Draft–verify cycles (SAFE) or steps (per-token strategies). */
  cycles: number;
  /** Forward passes per model, in model order. */
  forwardPasses: number[];
  /** Time per phase. */
  time: PhaseTimes;
  /**
   * Drafting ahead while the verifiers score a chunk (SAFE with members in worker threads):
   * tokens drafted ahead, and those dropped because the cycle ensembled. Present only when it
   * ran; every other statistic equals that of sequential execution.
   */
  pipeline?: { draftedAhead: number; discarded: number };
  /**
   * Per model, in model order, what its requests to a remote engine cost during this
   * generation (null for local models); present when some model is remote.
   */
  network?: Array<MemberNetworkStats | null>;
  /** Present when sampling (temperature above 0). */
  sampling?: SamplingStats;
  /**
   * Present with `unionScoring: 'look-ahead'` or `'auto'` (SAFE + UniTE): ensemble points scored by look-ahead (with greedy `'auto'`, those where the models' tokens split the text differently), the extra
   * forward passes they ran (over all models; rows already at hand cost none), and when sampling
   * the points whose acceptance the models' best tokens settled without scoring (`bounded`).
   */
  lookAhead?: { points: number; passes: number; bounded: number };
}

/** What sampling did in a generation. */
export interface SamplingStats {
  /** The seed of its random numbers: pass it as `seed` to get the same text again. */
  seed: number;
  /** SAFE: stable positions where the acceptance test ran (each counts as an ensembled token). */
  tested: number;
  /** SAFE: tested positions whose drafted token stood. */
  accepted: number;
  /** SAFE: tested positions whose drafted token was rejected and redrawn. */
  rejected: number;
}

/** One model's view at an ensemble point. */
export interface TraceModelEntry {
  /** Model source. */
  model: string;
  /** The model's aligned token at this position (text). */
  token: string;
  /** Its probability under the model. */
  probability: number;
  /** The model's own top choice (text). */
  argmax: string;
}

/** One candidate of the ensemble distribution. */
export interface TraceCandidate {
  /** Candidate text (`<eos>` for end of sequence). */
  text: string;
  /** Weighted average probability. */
  average: number;
  /** Score after sharpening (equals `average` when not sharpened). */
  score: number;
  /** Each model's probability, in model order. */
  perModel: number[];
  /** Sampling: the entry's probability in the distribution tokens are drawn from (P_ens). */
  probability?: number;
  /** SAFE sampling: the drafter's probability of the entry's string (P_draft). */
  draftProbability?: number;
  /** Look-ahead scoring: each model's probability that the text continues with this string, in model order (before the partition into exclusive events that `perModel` shows). */
  prefixMass?: number[];
}

/** SAFE sampling: the acceptance test at a position. */
export interface TraceAcceptance {
  /** The drafter's probability of its drafted token (P_draft(t)). */
  draftProbability: number;
  /** The ensemble's probability of it (P_ens(t); 0 outside the union). */
  ensembleProbability: number;
  /** min(1, P_ens(t) / P_draft(t)). */
  acceptProbability: number;
  /** The uniform number drawn for the test: accepted when below `acceptProbability`. */
  uniform: number;
  /** Whether the drafted token stood. */
  accepted: boolean;
  /**
   * Look-ahead sampling: the draft's family stood because the uniform fell below a lower bound of
   * its acceptance probability read from the models' best tokens alone (`acceptProbability` is
   * that bound; the family probabilities were not computed, so they read NaN and the candidates
   * are the first-token union's).
   */
  bounded?: boolean;
}

/** Sampling: a token drawn from an ensemble distribution. */
export interface TraceDraw {
  /** `ensemble`: from P_ens; `residual`: from max(0, P_ens − P_draft) normalised (SAFE after a rejection). */
  from: 'ensemble' | 'residual';
  /** The uniform number of the draw. */
  uniform: number;
  /** The drawn entry's probability in the distribution it was drawn from. */
  probability: number;
}

/** @internal What the generation hands the trace about sampling at a position. */
export interface TraceSampling {
  probabilities: Float64Array;
  draftProbabilities?: Float64Array;
  acceptance?: TraceAcceptance;
  draw?: TraceDraw;
}

/** One ensemble decision. */
export interface TraceRecord {
  /** Index of the drafter token in the response where the ensemble happened. */
  tokenIndex: number;
  /** Byte offset in the response text. */
  byteOffset: number;
  /** Cycle (SAFE) or step number. */
  cycle: number;
  /** What the drafter had proposed there. */
  drafted: { text: string; probability: number };
  /** Each model's aligned token and probability, drafter first. */
  models: TraceModelEntry[];
  /** Mean own-token probability (weighted), the consensus gate's statistic. */
  meanOwnProbability: number;
  /** Union candidates, best score first (at most 20). */
  candidates: TraceCandidate[];
  /** Whether sharpening changed the scores. */
  sharpened: boolean;
  /** Whether a bare space scored best in a sharpened decision and gave way to the best other entry. */
  bareSpaceGaveWay: boolean;
  /** The winning text and the drafter ids appended for it. */
  winner: { text: string; ids: number[] };
  /** Look-ahead scoring: the forward passes this point ran. */
  lookAhead?: { passes: number };
  /** SAFE sampling: the acceptance test (every stable position gets one). */
  acceptance?: TraceAcceptance;
  /** Sampling: the draw from an ensemble distribution, where one decided the token. */
  draw?: TraceDraw;
}

/** The outcome of a generation. */
export interface EnsembleResult {
  /** Generated text (cut before a stop string). */
  text: string;
  /** Why it stopped. */
  finishReason: FinishReason;
  /** Statistics. */
  stats: EnsembleStats;
  /** Ensemble decisions, when `trace: true`. */
  trace?: TraceRecord[];
}

/** A streamed piece: committed text, then the final result. */
export type EnsembleChunk = { type: 'text'; text: string } | { type: 'result'; result: EnsembleResult };
