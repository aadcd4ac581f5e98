/**
 * vLLM's OpenAI-compatible `/v1/completions` as a member protocol (targets vLLM 0.6–0.11).
 * Prompts are token ids; `return_tokens_as_token_ids` makes the generated token's top-k come
 * keyed `token_id:<id>`; `prompt_logprobs` returns, per prompt position, a dict keyed by id that
 * always holds the actual token. Two ways to score a pass:
 *
 * - `'prompt-logprobs'` (default): one prompt, the whole sequence, `prompt_logprobs: k` and one
 *   generated token. One request per pass, but vLLM skips its prefix cache for requests with
 *   prompt log-probabilities, so each pass re-prefills the whole context.
 * - `'prefix-cache'`: one prompt per row (the sequence cut before each position asked for),
 *   `max_tokens: 1, logprobs: k`, all in one request: the prefix cache serves every prompt, but
 *   the server runs one sequence per row, and a row's own token is known only when it is in
 *   the top-k (otherwise it is read later, one more request).
 *
 * Log-probabilities of arbitrary ids (UniTE's fill-in) come from `prompt_logprobs` of the
 * prefix extended by each id (the actual token is always included). `--max-logprobs` (default
 * 20) caps k: a larger top-k fails with an error saying so (in the V1 wording, "… greater than
 * max allowed: N", and the V0 one, "Cannot request more than N logprobs.").
 *
 * Versions: the per-request `return_tokens_as_token_ids` is read from vLLM 0.8.0 on; older
 * servers ignore it unless started with `--return-tokens-as-token-ids`, which the member checks
 * at load ({@link VllmProtocol.probe}) and refuses with that fix.
 * @module
 */
import { RemoteEngineError } from '../errors.js';
import type { RemoteClient } from './http.js';
import type { RemoteMemberStats, RemoteProtocol, RemoteRow, RequestScope } from './protocol.js';

/** How a vLLM member scores a pass (see the module notes). */
export type VllmScoring = 'prompt-logprobs' | 'prefix-cache';

type PromptLogprobs = Array<Record<string, { logprob: number; rank?: number; decoded_token?: string }> | null>;

interface Choice {
  index?: number;
  prompt_logprobs?: PromptLogprobs;
  logprobs?: { tokens?: string[]; token_logprobs?: number[]; top_logprobs?: Array<Record<string, number> | null> } | null;
}

/** The vLLM `/v1/completions` protocol. */
export class VllmProtocol implements RemoteProtocol {
  constructor(
    private readonly client: RemoteClient,
    private readonly stats: RemoteMemberStats,
    /** The served model's name (`/v1/models`). */
    private readonly model: string,
    private readonly scoring: VllmScoring,
    /** Whether fill-ins may fall back to a bound when the server has no prompt log-probabilities. */
    private readonly allowBounded: boolean,
  ) {}

  /** Checks at load that generated tokens come back keyed by id (`token_id:<id>`). */
  async probe(signal?: AbortSignal): Promise<void> {
    const [choice] = await this.complete({ prompt: [0], max_tokens: 1, logprobs: 1 }, 1, { signal }, 4);
    generatedTop(choice!, 'choices[0]', this);
  }

  async score(seq: readonly number[], first: number, k: number, asked: readonly number[], scope: RequestScope = {}): Promise<RemoteRow[]> {
    if (this.scoring === 'prefix-cache') {
      const prompts = Array.from({ length: seq.length - first + 1 }, (_, i) => seq.slice(0, first + i));
      const choices = await this.complete({ prompt: prompts, max_tokens: 1, logprobs: k }, prompts.length, scope, prompts.length * (k + 2));
      return choices.map((c, i) => {
        const top = generatedTop(c, `choices[${i}]`, this);
        const own = asked[i]!;
        return { top, asked: own >= 0 ? (top.find(([id]) => id === own)?.[1] ?? NaN) : NaN };
      });
    }
    const [choice] = await this.complete({ prompt: [...seq], max_tokens: 1, logprobs: k, prompt_logprobs: k }, 1, scope, (seq.length + 1) * (k + 2));
    const prompt = choice!.prompt_logprobs;
    if (!Array.isArray(prompt) || prompt.length !== seq.length) {
      throw this.malformed(`returned ${Array.isArray(prompt) ? prompt.length : 'no'} prompt_logprobs for a prompt of ${seq.length} ids (is prompt_logprobs supported by this server?)`);
    }
    const rows: RemoteRow[] = [];
    for (let q = first; q < seq.length; q++) {
      const dict = prompt[q];
      if (!dict || typeof dict !== 'object') throw this.malformed(`prompt_logprobs[${q}] is ${dict === null ? 'null' : typeof dict}, not an object keyed by token id`);
      const all = keyedById(dict, `prompt_logprobs[${q}]`, this);
      const own = all.find(([id]) => id === seq[q]);
      if (!own) throw this.malformed(`prompt_logprobs[${q}] lacks the prompt's own token ${seq[q]}`);
      // The dict holds the top-k and the actual token (k + 1 entries when it is not among them,
      // ranked below them: the member keeps the k best).
      rows.push({ top: all.map(([id, lp]) => [id, lp] as [number, number]), asked: asked[q - first] === seq[q] ? own[1] : NaN });
    }
    const top = generatedTop(choice!, 'choices[0]', this);
    const last = asked[asked.length - 1]!;
    rows.push({ top, asked: last >= 0 ? (top.find(([id]) => id === last)?.[1] ?? NaN) : NaN });
    return rows;
  }

  async generate(seq: readonly number[], n: number, k: number, scope: RequestScope = {}): Promise<Array<{ id: number; row: RemoteRow }>> {
    const [choice] = await this.complete({ prompt: [...seq], max_tokens: n, logprobs: k }, 1, scope, n * (k + 2));
    const lp = choice!.logprobs;
    const tokens = lp?.tokens;
    const tops = lp?.top_logprobs;
    if (!Array.isArray(tokens) || !Array.isArray(tops) || tokens.length !== tops.length || tokens.length === 0 || tokens.length > n) {
      throw this.malformed(`returned ${tokens?.length ?? 'no'} tokens and ${tops?.length ?? 'no'} top_logprobs for up to ${n} new tokens`);
    }
    return tokens.map((t, i) => {
      const m = typeof t === 'string' ? /^token_id:(\d+)$/.exec(t) : null;
      if (!m) throw this.withoutTokenIds(`logprobs.tokens[${i}]`);
      const id = Number(m[1]);
      const top = topOf(tops[i], `choices[0].logprobs.top_logprobs[${i}]`, this);
      const own = lp!.token_logprobs?.[i];
      return { id, row: { top, asked: typeof own === 'number' || own === null ? (own ?? NaN) : (top.find(([x]) => x === id)?.[1] ?? NaN) } };
    });
  }

  async logprobsOf(prefix: readonly number[], ids: readonly number[], scope: RequestScope = {}): Promise<Float64Array> {
    const prompts = ids.map((id) => [...prefix, id]);
    let choices: Choice[];
    try {
      choices = await this.complete({ prompt: prompts, max_tokens: 1, prompt_logprobs: 1 }, prompts.length, scope, prompts.length * 2 * (prefix.length + 2));
    } catch (error) {
      // Only a server that cannot give prompt log-probabilities (or caps them) may leave the
      // ids to a bound; any other refusal (context length, validation) is an error.
      const unanswerable = error instanceof RemoteEngineError && error.status === 400 && (error.failure === 'unsupported' || /prompt[_ ]logprobs/i.test(error.message) && /(not supported|unsupported|incompatible|not yet supported)/i.test(error.message));
      if (!unanswerable) throw error;
      if (this.allowBounded) return new Float64Array(ids.length).fill(NaN);
      throw new RemoteEngineError('unsupported', (error as RemoteEngineError).url, `${(error as RemoteEngineError).message} — this server cannot give the log-probability of an id asked by value (UniTE's fill-in needs prompt log-probabilities). Start it so that prompt_logprobs work (vLLM V1, or V0 with --no-enable-prefix-caching), or pass allowBoundedLogprobs: true to accept upper bounds.`, { cause: error, status: 400 });
    }
    return Float64Array.from(ids, (id, i) => {
      const dict = choices[i]!.prompt_logprobs?.[prefix.length];
      const hit = dict ? keyedById(dict, `prompt_logprobs[${prefix.length}]`, this).find(([x]) => x === id) : undefined;
      return hit ? hit[1] : NaN;
    });
  }

  private async complete(fields: Record<string, unknown>, expected: number, scope: RequestScope, entries: number): Promise<Choice[]> {
    const body = { model: this.model, temperature: 0, return_tokens_as_token_ids: true, ...fields };
    let answer: { choices?: Choice[] };
    try {
      answer = (await this.client.post('v1/completions', body, scope.signal, entries, scope.stats)) as { choices?: Choice[] };
    } catch (error) {
      // V1: "Requested … logprobs of N, which is greater than max allowed: M"; V0: "Cannot request more than M logprobs."
      if (error instanceof RemoteEngineError && error.status === 400 && /logprob/i.test(error.message) && /(max allowed|more than \d+)/i.test(error.message)) {
        throw new RemoteEngineError('unsupported', error.url, `${error.message} — vLLM caps log-probabilities per token (--max-logprobs, default 20): start it with --max-logprobs at least the number asked (unionTopK; when sampling, topK if larger), or lower them.`, { cause: error, status: 400 });
      }
      throw error;
    }
    const choices = answer?.choices;
    if (!Array.isArray(choices) || choices.length !== expected) throw this.malformed(`returned ${Array.isArray(choices) ? choices.length : 'no'} choices for ${expected} prompts`);
    return [...choices].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  }

  /** Server text fit to quote. */
  quote(text: string): string {
    return `"${this.client.quote(text, 60)}"`;
  }

  /** A malformed-answer error for this server. */
  malformed(what: string): RemoteEngineError {
    const url = this.client.urlOf('v1/completions');
    return new RemoteEngineError('malformed', url, `${this.client.member}: ${url} ${what}.`);
  }

  /** The error for a server that keys generated tokens by text: it ignored return_tokens_as_token_ids. */
  withoutTokenIds(where: string): RemoteEngineError {
    const url = this.client.urlOf('v1/completions');
    return new RemoteEngineError(
      'unsupported',
      url,
      `${this.client.member}: ${url} keys ${where} by token text, not token_id:<id>: it ignores the per-request return_tokens_as_token_ids (vLLM before 0.8.0). Start the server with --return-tokens-as-token-ids, or upgrade vLLM to 0.8.0 or later.`,
    );
  }
}

/** Entries of a prompt_logprobs dict as [id, logprob, rank]. */
function keyedById(dict: Record<string, { logprob: number; rank?: number }>, where: string, protocol: VllmProtocol): Array<[number, number, number | undefined]> {
  if (!dict || typeof dict !== 'object' || Array.isArray(dict)) throw protocol.malformed(`${where} is not an object keyed by token id`);
  return Object.entries(dict).map(([key, v]) => {
    const id = /^\d{1,9}$/.test(key) ? Number(key) : NaN;
    if (!Number.isInteger(id) || !v || typeof v !== 'object' || typeof v.logprob !== 'number') throw protocol.malformed(`${where} has an entry that is not "<id>": { logprob } (key ${protocol.quote(key)})`);
    return [id, v.logprob, v.rank];
  });
}

/** The top-k of the (first) generated token, keyed `token_id:<id>` (return_tokens_as_token_ids). */
function generatedTop(choice: Choice, where: string, protocol: VllmProtocol): Array<[number, number]> {
  return topOf(choice.logprobs?.top_logprobs?.[0], `${where}.logprobs.top_logprobs[0]`, protocol);
}

function topOf(dict: Record<string, number> | null | undefined, where: string, protocol: VllmProtocol): Array<[number, number]> {
  if (!dict || typeof dict !== 'object' || Array.isArray(dict)) throw protocol.malformed(`${where} is missing`);
  return Object.entries(dict).map(([key, logprob]) => {
    const m = /^token_id:(\d{1,9})$/.exec(key);
    if (!m) throw protocol.withoutTokenIds(where);
    if (typeof logprob !== 'number') throw protocol.malformed(`${where} has a log-probability that is not a number (key ${protocol.quote(key)})`);
    return [Number(m[1]), logprob];
  });
}
