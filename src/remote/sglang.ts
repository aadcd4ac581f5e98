/**
 * SGLang's native `/generate` API as a member protocol (targets SGLang 0.4–0.5's logprob
 * fields). One request per pass: `input_ids` is the whole sequence, `logprob_start_len` starts
 * the returned input log-probabilities just before the first row asked for (so the radix cache
 * serves everything before it), `top_logprobs_num` gives each row's top-k, and one generated
 * token (greedy) carries the row after the last input token. The logprob options sit at the
 * top level of the request, not in `sampling_params`.
 *
 * Response layout: `meta_info.input_token_logprobs[i]` is `[logprob, id, text]` of input token
 * `logprob_start_len + i` (the first entry's logprob is null by design);
 * `meta_info.input_top_logprobs[i]` is the top-k list predicting that token (null for i = 0);
 * `output_top_logprobs[0]` predicts the first generated token; `*_token_ids_logprob` answer
 * `token_ids_logprob` (the ids asked for by value) at the same positions.
 *
 * Quirks handled: SGLang's newest JSON encoder writes non-finite log-probabilities as `null`
 * (read as −∞, the only non-finite value a log-probability may take); it echoes input ids at or
 * above `vocab_size − 1` as 0 in `input_token_logprobs` (accepted for those ids, whose own
 * log-probability is then read by id); servers without `token_ids_logprob` are detected at load.
 * @module
 */
import { RemoteEngineError } from '../errors.js';
import type { RemoteClient } from './http.js';
import type { RemoteMemberStats, RemoteProtocol, RemoteRow, RequestScope } from './protocol.js';

type Entry = [logprob: number | null, id: number, text?: string | null];

interface MetaInfo {
  input_token_logprobs?: Entry[];
  input_top_logprobs?: Array<Entry[] | null>;
  output_token_logprobs?: Entry[];
  output_top_logprobs?: Array<Entry[] | null>;
  input_token_ids_logprobs?: Array<Entry[] | null>;
  output_token_ids_logprobs?: Array<Entry[] | null>;
  cached_tokens?: number;
}

/** The SGLang `/generate` protocol. */
export class SGLangProtocol implements RemoteProtocol {
  /** Whether the server answers `token_ids_logprob` (found out at load by {@link probe}). */
  private arbitraryIds = true;

  constructor(
    private readonly client: RemoteClient,
    private readonly stats: RemoteMemberStats,
    /** The tokenizer's number of ids (SGLang echoes the last one as 0). */
    private readonly vocabSize: number,
    /** Whether a server without `token_ids_logprob` is accepted (fill-ins then use a bound). */
    private readonly allowBounded: boolean,
  ) {}

  /**
   * Checks the server at load: returns how it tokenizes `text` (the input ids it echoes) and
   * finds out whether it answers log-probabilities of ids asked by value.
   */
  async probe(text: string, signal?: AbortSignal): Promise<unknown[]> {
    const ask = async (withIds: boolean): Promise<MetaInfo | undefined> => {
      const body = { text, sampling_params: { max_new_tokens: 1, temperature: 0 }, return_logprob: true, logprob_start_len: 0, top_logprobs_num: 1, ...(withIds ? { token_ids_logprob: [0] } : {}) };
      const answer = (await this.client.post('generate', body, signal, 256)) as { meta_info?: MetaInfo } | Array<{ meta_info?: MetaInfo }>;
      return (Array.isArray(answer) ? answer[0] : answer)?.meta_info;
    };
    let meta: MetaInfo | undefined;
    let refused = false;
    try {
      meta = await ask(true);
    } catch (error) {
      // A release without the field may refuse it as an unexpected argument.
      if (!(error instanceof RemoteEngineError && error.status === 400 && /token_ids_logprob/.test(error.message))) throw error;
      refused = true;
    }
    if (refused || !Array.isArray(meta?.output_token_ids_logprobs)) {
      if (!this.allowBounded) {
        throw new RemoteEngineError(
          'unsupported',
          this.client.urlOf('generate'),
          `${this.client.member}: ${this.client.urlOf('generate')} does not answer token_ids_logprob (the log-probabilities of ids asked by value, which UniTE's fill-ins need; older SGLang releases lack it), so every fill-in would be an upper bound. Upgrade SGLang (0.5.x answers it), or pass allowBoundedLogprobs: true to accept bounds.`,
        );
      }
      this.arbitraryIds = false;
      if (refused) meta = await ask(false);
    }
    const echoed = meta?.input_token_logprobs;
    return Array.isArray(echoed) ? echoed.map((e) => (Array.isArray(e) ? e[1] : undefined)) : [];
  }

  async score(seq: readonly number[], first: number, k: number, asked: readonly number[], scope: RequestScope = {}): Promise<RemoteRow[]> {
    const start = first - 1;
    const lastAsked = asked[asked.length - 1]!;
    const askLast = lastAsked >= 0 && this.arbitraryIds;
    const meta = await this.request(seq, start, 1, { top_logprobs_num: k, ...(askLast ? { token_ids_logprob: [lastAsked] } : {}) }, scope, (seq.length - start + 1) * (k + 3));
    const rows: RemoteRow[] = [];
    const inputTop = meta.input_top_logprobs;
    const inputTokens = meta.input_token_logprobs;
    const expected = seq.length - start;
    if (!Array.isArray(inputTop) || !Array.isArray(inputTokens) || inputTop.length !== expected || inputTokens.length !== expected) {
      throw this.malformed(`returned ${inputTop?.length ?? 'no'} input_top_logprobs and ${inputTokens?.length ?? 'no'} input_token_logprobs for ${expected} input positions (logprob_start_len ${start}, ${seq.length} input ids); this adapter targets SGLang 0.4–0.5`);
    }
    for (let i = 1; i < expected; i++) {
      const position = start + i;
      const token = inputTokens[i]!;
      const id = seq[position]!;
      // SGLang echoes ids at or above vocab_size - 1 as 0: accepted there, the value then read by id.
      const echoedAsZero = Array.isArray(token) && token[1] === 0 && id >= this.vocabSize - 1;
      if (!Array.isArray(token) || (token[1] !== id && !echoedAsZero)) throw this.malformed(`input_token_logprobs[${i}] is for token ${describeId(token?.[1])} where the input has ${id}`);
      // The asked id of an input row is the token there (the engine asks for what follows).
      const own = asked[i - 1]!;
      rows.push({ top: entries(inputTop[i], `input_top_logprobs[${i}]`, this), asked: own === id && !echoedAsZero ? logprobOf(token[0]) : NaN });
    }
    const last = meta.output_top_logprobs?.[0];
    const lastIds = meta.output_token_ids_logprobs?.[0];
    const askedLast = askLast ? (lastIds ?? []).find((e) => Array.isArray(e) && e[1] === lastAsked)?.[0] : undefined;
    rows.push({ top: entries(last ?? null, 'output_top_logprobs[0]', this), asked: askedLast === undefined ? NaN : logprobOf(askedLast) });
    return rows;
  }

  async logprobsOf(prefix: readonly number[], ids: readonly number[], scope: RequestScope = {}): Promise<Float64Array> {
    // A server without token_ids_logprob (accepted with allowBoundedLogprobs): the caller bounds them.
    if (!this.arbitraryIds) return new Float64Array(ids.length).fill(NaN);
    const meta = await this.request(prefix, prefix.length - 1, 1, { token_ids_logprob: [...ids] }, scope, 2 * ids.length + 4);
    const answer = meta.output_token_ids_logprobs?.[0] ?? [];
    const byId = new Map<number, number>();
    for (const e of Array.isArray(answer) ? answer : []) if (Array.isArray(e) && (typeof e[0] === 'number' || e[0] === null)) byId.set(e[1], logprobOf(e[0]));
    return Float64Array.from(ids, (id) => byId.get(id) ?? NaN);
  }

  async generate(seq: readonly number[], n: number, k: number, scope: RequestScope = {}): Promise<Array<{ id: number; row: RemoteRow }>> {
    const meta = await this.request(seq, seq.length - 1, n, { top_logprobs_num: k }, scope, (n + 1) * (k + 3));
    const tokens = meta.output_token_logprobs;
    const tops = meta.output_top_logprobs;
    if (!Array.isArray(tokens) || !Array.isArray(tops) || tokens.length !== tops.length || tokens.length === 0 || tokens.length > n) {
      throw this.malformed(`returned ${tokens?.length ?? 'no'} output_token_logprobs and ${tops?.length ?? 'no'} output_top_logprobs for up to ${n} new tokens`);
    }
    return tokens.map((t, i) => {
      if (!Array.isArray(t) || !Number.isInteger(t[1])) throw this.malformed(`output_token_logprobs[${i}] is not [logprob, id, text]`);
      return { id: t[1], row: { top: entries(tops[i], `output_top_logprobs[${i}]`, this), asked: typeof t[0] === 'number' || t[0] === null ? logprobOf(t[0]) : NaN } };
    });
  }

  private async request(inputIds: readonly number[], start: number, newTokens: number, logprobs: Record<string, unknown>, scope: RequestScope, entries: number): Promise<MetaInfo> {
    const body = {
      input_ids: inputIds,
      sampling_params: { max_new_tokens: newTokens, temperature: 0 },
      return_logprob: true,
      // 0 would disable prefix reuse: start at the first row needed (at least 1 token in).
      logprob_start_len: Math.max(0, start),
      ...logprobs,
    };
    const answer = (await this.client.post('generate', body, scope.signal, entries, scope.stats)) as { meta_info?: MetaInfo } | Array<{ meta_info?: MetaInfo }>;
    const one = Array.isArray(answer) ? answer[0] : answer;
    const meta = one?.meta_info;
    if (!meta || typeof meta !== 'object') throw this.malformed('answered without meta_info');
    const cached = meta.cached_tokens;
    if (typeof cached === 'number' && Number.isInteger(cached) && cached >= 0 && cached <= inputIds.length) {
      this.stats.cachedTokens += cached;
      if (scope.stats) scope.stats.cachedTokens += cached;
    }
    return meta;
  }

  /** A malformed-answer error for this server. */
  malformed(what: string): RemoteEngineError {
    return new RemoteEngineError('malformed', this.client.urlOf('generate'), `${this.client.member}: ${this.client.urlOf('generate')} ${what}.`);
  }
}

/** A log-probability as SGLang writes it: `null` stands for a non-finite value, which for a log-probability can only be −∞. */
function logprobOf(value: number | null): number {
  return value === null ? -Infinity : value;
}

function describeId(id: unknown): string {
  return Number.isInteger(id) ? String(id) : typeof id;
}

function entries(list: Entry[] | null | undefined, where: string, protocol: SGLangProtocol): Array<[number, number]> {
  if (!Array.isArray(list)) throw protocol.malformed(`returned no ${where} (is return_logprob supported by this server?)`);
  return list.map((e, i) => {
    if (!Array.isArray(e) || (typeof e[0] !== 'number' && e[0] !== null) || !Number.isInteger(e[1])) throw protocol.malformed(`${where}[${i}] is not [logprob, id, text]`);
    return [e[1], logprobOf(e[0])] as [number, number];
  });
}
