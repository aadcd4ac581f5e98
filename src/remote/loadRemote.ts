/**
 * Declaring a member served by SGLang or vLLM: the tokenizer is loaded here (the engine renders
 * prompts with it, compares models through its bytes), the server is checked before use.
 * @module
 */
import { join } from 'node:path';
import { InvalidArgumentError, RemoteEngineError } from '../errors.js';
import { readJsonFile, resolveSource, sizeField } from '../runtime/loadModel.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { RemoteClient, type RemoteConnectionOptions } from './http.js';
import { RemoteMember, type RemoteEngine } from './remoteMember.js';
import { SGLangProtocol } from './sglang.js';
import { VllmProtocol, type VllmScoring } from './vllm.js';

/** A model served by an inference engine, as an ensemble member. */
export interface RemoteModelSpec extends RemoteConnectionOptions {
  /** The engine serving it. */
  engine: RemoteEngine;
  /** Folder (or Hub id) with the served model's tokenizer.json, tokenizer_config.json and chat template. */
  tokenizer: string;
  /** vLLM: the served model name (default: the first one `/v1/models` lists). */
  model?: string;
  /** vLLM: how a pass is scored (default `'prompt-logprobs'`; see vllm.ts). */
  vllmScoring?: VllmScoring;
  /** Context length (default: what the server reports, else the tokenizer folder's config.json, else 32,768). */
  maxPositions?: number;
  /** Label for messages and traces (default `engine:url`). */
  name?: string;
}

/** Text whose tokenization the server and the local tokenizer must agree on. */
const PROBE = 'Hello, world! 12 + 30 = 42. Café, naïve, 日本語 🎉';

const ENGINES: readonly RemoteEngine[] = ['sglang', 'vllm'];

/** Whether a model entry declares a remote member. */
export function isRemoteSpec(spec: unknown): spec is RemoteModelSpec {
  return !!spec && typeof spec === 'object' && 'engine' in spec;
}

/**
 * Connects to a model served by SGLang or vLLM and checks it: the server answers, and it
 * tokenizes a probe string exactly as the local tokenizer does (the same model's vocabulary).
 *
 * @example
 * ```ts
 * const qwen = await loadRemoteModel({ engine: 'sglang', url: 'http://gpu-1:30000', tokenizer: './qwen-tokenizer' });
 * const ensemble = new SafeEnsemble([qwen, await loadModel('./models/mistral')]);
 * ```
 */
export async function loadRemoteModel(spec: RemoteModelSpec, signal?: AbortSignal): Promise<RemoteMember> {
  if (!spec || typeof spec !== 'object') throw new InvalidArgumentError('models', 'a remote model needs { engine, url, tokenizer }.');
  if (!ENGINES.includes(spec.engine)) throw new InvalidArgumentError('engine', `engine must be one of ${ENGINES.join(', ')}, got ${JSON.stringify(spec.engine)}.`);
  if (typeof spec.url !== 'string') throw new InvalidArgumentError('url', `${spec.engine}: url is required (the server's base URL, e.g. http://127.0.0.1:30000).`);
  if (typeof spec.tokenizer !== 'string' || spec.tokenizer === '') {
    throw new InvalidArgumentError('tokenizer', `${spec.engine} member ${spec.url}: tokenizer is required: a folder (or Hub id) with the served model's tokenizer.json and tokenizer_config.json.`);
  }
  if (spec.vllmScoring !== undefined && spec.vllmScoring !== 'prompt-logprobs' && spec.vllmScoring !== 'prefix-cache') {
    throw new InvalidArgumentError('vllmScoring', `vllmScoring must be 'prompt-logprobs' or 'prefix-cache', got ${JSON.stringify(spec.vllmScoring)}.`);
  }
  if (spec.maxPositions !== undefined && (!Number.isInteger(spec.maxPositions) || spec.maxPositions < 2)) {
    throw new InvalidArgumentError('maxPositions', `maxPositions must be an integer >= 2, got ${String(spec.maxPositions)}.`);
  }
  const name = spec.name ?? `${spec.engine}:${spec.url}`;
  const client = new RemoteClient(name, spec);
  const dir = await resolveSource(spec.tokenizer, {});
  const config = readJsonFile(join(dir, 'config.json'), false) ?? {};
  const generationConfig = readJsonFile(join(dir, 'generation_config.json'), false);
  const tokenizer = await TextTokenizer.fromFolder(dir, { generationConfig, modelConfig: config });
  const configured = sizeField(config, ['max_position_embeddings', 'n_positions', 'max_sequence_length', 'seq_length'], join(dir, 'config.json'));
  const local = tokenizer.encode(PROBE, { addSpecialTokens: true });
  const stats = { boundedLogprobs: 0, cachedTokens: 0 };
  let protocol;
  let reported: number | null = null;
  let served: number[];
  if (spec.engine === 'sglang') {
    protocol = new SGLangProtocol(client, Object.assign(client.traffic, stats));
    const info = (await client.get('get_model_info', signal)) as { model_path?: unknown } | null;
    if (!info || typeof info !== 'object') throw new RemoteEngineError('malformed', client.urlOf('get_model_info'), `${name}: ${client.urlOf('get_model_info')} did not answer with the model's info; is this an SGLang server?`);
    const answer = (await client.post('generate', { text: PROBE, sampling_params: { max_new_tokens: 1, temperature: 0 }, return_logprob: true, logprob_start_len: 0 }, signal)) as { meta_info?: { input_token_logprobs?: Array<[unknown, number]> } };
    served = (answer?.meta_info?.input_token_logprobs ?? []).map((e) => e?.[1]);
  } else {
    const models = (await client.get('v1/models', signal)) as { data?: Array<{ id?: string; max_model_len?: number }> };
    const listed = Array.isArray(models?.data) ? models.data : [];
    const chosen = spec.model ? listed.find((m) => m.id === spec.model) : listed[0];
    if (!chosen || typeof chosen.id !== 'string') {
      throw new RemoteEngineError('mismatch', client.urlOf('v1/models'), `${name}: ${client.urlOf('v1/models')} lists ${listed.length ? listed.map((m) => m.id).join(', ') : 'no models'}${spec.model ? `, not "${spec.model}"` : ''}. Pass model: the name the server serves.`);
    }
    if (typeof chosen.max_model_len === 'number') reported = chosen.max_model_len;
    protocol = new VllmProtocol(client, Object.assign(client.traffic, stats), chosen.id, spec.vllmScoring ?? 'prompt-logprobs');
    const answer = (await client.post('tokenize', { model: chosen.id, prompt: PROBE, add_special_tokens: true }, signal)) as { tokens?: number[] };
    served = Array.isArray(answer?.tokens) ? answer.tokens : [];
  }
  if (served.length !== local.length || served.some((id, i) => id !== local[i])) {
    throw new RemoteEngineError(
      'mismatch',
      client.base.toString(),
      `${name}: the server tokenizes ${JSON.stringify(PROBE)} as [${served.slice(0, 24).join(', ')}${served.length > 24 ? ', …' : ''}] but the tokenizer in ${dir} gives [${local.slice(0, 24).join(', ')}${local.length > 24 ? ', …' : ''}]: the server serves another model than this tokenizer's. Point tokenizer at the served model's tokenizer files.`,
    );
  }
  const maxPositions = spec.maxPositions ?? reported ?? configured ?? 32_768;
  return new RemoteMember(name, spec.engine, tokenizer, maxPositions, client, protocol);
}
