/**
 * What an engine's protocol (sglang.ts, vllm.ts) gives the remote members: scored rows of a
 * token sequence, log-probabilities of asked ids, greedy drafts — one request each, for the
 * sequence a request names (the server keeps none between requests).
 * @module
 */
import type { RemoteTraffic } from './http.js';

/** The engines a remote member can be served by. */
export type RemoteEngine = 'sglang' | 'vllm';

/** One scored row as an engine returned it: log-probabilities of some ids. */
export interface RemoteRow {
  /** Best ids with their log-probabilities (at least the k asked for, unless the vocabulary is smaller). */
  top: Array<[id: number, logprob: number]>;
  /** The log-probability of the asked id, where the answer included it (else NaN). */
  asked: number;
}

/** Counts of a remote member, added to the ensemble's statistics. */
export interface RemoteMemberStats extends RemoteTraffic {
  /** Fill-in ids whose log-probability the engine could not give: the row's k-th best was used (an upper bound). */
  boundedLogprobs: number;
  /** Prompt tokens the server said it served from its prefix cache (SGLang `cached_tokens`), where it says. */
  cachedTokens: number;
}

/** Whose request it is: the caller's stop signal, and the statistics its traffic also counts in (one generation's). */
export interface RequestScope {
  signal?: AbortSignal;
  stats?: RemoteMemberStats;
}

/** What the protocol of one engine must provide. */
export interface RemoteProtocol {
  /**
   * Rows of `seq` predicting positions `first..seq.length` (a row predicts the token at that
   * position from the ones before it), each with its top `k` and the log-probability of `asked[i]`.
   */
  score(seq: readonly number[], first: number, k: number, asked: readonly number[], scope?: RequestScope): Promise<RemoteRow[]>;
  /** Log-probabilities of `ids` at the row predicting position `prefix.length`; NaN where the engine cannot say. */
  logprobsOf(prefix: readonly number[], ids: readonly number[], scope?: RequestScope): Promise<Float64Array>;
  /**
   * Greedy generation after `seq`: up to `n` tokens (fewer when one ends the sequence), each
   * with the top `k` of the row that chose it.
   */
  generate(seq: readonly number[], n: number, k: number, scope?: RequestScope): Promise<Array<{ id: number; row: RemoteRow }>>;
}

/** Fresh zero counts. */
export function freshRemoteStats(): RemoteMemberStats {
  return { requests: 0, bytesSent: 0, bytesReceived: 0, waitMs: 0, retries: 0, boundedLogprobs: 0, cachedTokens: 0 };
}
