/**
 * Declaring a member served by SGLang or vLLM: the declaration is checked (before anything is
 * sent), the tokenizer is loaded here (the engine renders prompts with it, compares models
 * through its bytes), and the server is checked before use: it answers, tokenizes as the
 * tokenizer does, and has the features the member needs.
 * @module
 */
import { basename, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { InvalidArgumentError, RemoteEngineError } from '../errors.js';
import { readJsonFile, resolveSource, sizeField } from '../runtime/loadModel.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { checkApiKey, checkConnectionOptions, checkServerUrl, RemoteClient, type RemoteConnectionOptions } from './http.js';
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
  /**
   * Accept a server that cannot give the log-probability of an arbitrary id (UniTE's fill-in):
   * the row's k-th best log-probability is used instead, an upper bound counted in
   * `stats.network[i].boundedLogprobs` (default false: such a server is refused with the fix).
   */
  allowBoundedLogprobs?: boolean;
  /** Label for messages and traces (default `engine:` and the model's name: `model`, else the tokenizer's folder name or Hub id). */
  name?: string;
}

/** Text whose tokenization the server and the local tokenizer must agree on. */
const PROBE = 'Hello, world! 12 + 30 = 42. Café, naïve, 日本語 🎉';

const ENGINES: readonly RemoteEngine[] = ['sglang', 'vllm'];
const SPEC_KEYS = new Set(['engine', 'url', 'tokenizer', 'apiKey', 'timeoutMs', 'retries', 'retryDelayMs', 'maxResponseBytes', 'maxInFlight', 'model', 'vllmScoring', 'maxPositions', 'allowBoundedLogprobs', 'name', 'weight']);

/** Whether a model entry declares a remote member. */
export function isRemoteSpec(spec: unknown): spec is RemoteModelSpec {
  return !!spec && typeof spec === 'object' && 'engine' in spec;
}

/**
 * A model's name for traces and messages, never a path: a folder's own name, or a Hub id as
 * given (`org/name`).
 */
export function modelDisplayName(source: string): string {
  const looksLikePath = source.startsWith('.') || source.startsWith('/') || source.includes('\\') || source.split('/').length > 2 || existsSync(resolve(source));
  return looksLikePath ? basename(resolve(source)) || source : source;
}

/** The label of a remote declaration (its `name`, else `engine:` and the model's name). */
export function remoteDisplayName(spec: RemoteModelSpec): string {
  if (typeof spec.name === 'string' && spec.name !== '') return spec.name;
  const model = typeof spec.model === 'string' && spec.model ? spec.model : typeof spec.tokenizer === 'string' ? modelDisplayName(spec.tokenizer) : 'model';
  return `${spec.engine}:${model}`;
}

/**
 * Checks a remote declaration without contacting the server (what the LangChain classes do at
 * construction): the engine, the url (http/https, no credentials), the key, the tokenizer and
 * the options, each failing as an {@link InvalidArgumentError} naming the field and the fix.
 */
export function checkRemoteSpec(spec: RemoteModelSpec, where = 'remote model'): void {
  if (!spec || typeof spec !== 'object') throw new InvalidArgumentError('models', `${where}: a remote model needs { engine, url, tokenizer }.`);
  if (!ENGINES.includes(spec.engine)) throw new InvalidArgumentError('engine', `${where}: engine must be one of ${ENGINES.join(', ')}, got ${typeof spec.engine === 'string' ? JSON.stringify(spec.engine.slice(0, 40)) : typeof spec.engine}.`);
  const label = `${where} (${spec.engine})`;
  checkServerUrl(spec.url, label);
  checkApiKey(spec.apiKey, label);
  checkConnectionOptions(spec, label);
  if (typeof spec.tokenizer !== 'string' || spec.tokenizer === '') {
    throw new InvalidArgumentError('tokenizer', `${label}: tokenizer is required: a folder (or Hub id) with the served model's tokenizer.json and tokenizer_config.json.`);
  }
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key)) throw new InvalidArgumentError(key, `${label}: ${JSON.stringify(key.slice(0, 40))} is not an option of a served model; valid options are ${[...SPEC_KEYS].join(', ')}.`);
  }
  if (spec.vllmScoring !== undefined && spec.vllmScoring !== 'prompt-logprobs' && spec.vllmScoring !== 'prefix-cache') {
    throw new InvalidArgumentError('vllmScoring', `${label}: vllmScoring must be 'prompt-logprobs' or 'prefix-cache'.`);
  }
  if (spec.maxPositions !== undefined && (!Number.isInteger(spec.maxPositions) || spec.maxPositions < 2)) {
    throw new InvalidArgumentError('maxPositions', `${label}: maxPositions must be an integer >= 2, got ${String(spec.maxPositions)}.`);
  }
  if (spec.allowBoundedLogprobs !== undefined && typeof spec.allowBoundedLogprobs !== 'boolean') {
    throw new InvalidArgumentError('allowBoundedLogprobs', `${label}: allowBoundedLogprobs must be true or false.`);
  }
  for (const key of ['name', 'model'] as const) {
    if (spec[key] !== undefined && (typeof spec[key] !== 'string' || spec[key] === '')) throw new InvalidArgumentError(key, `${label}: ${key} must be a non-empty string.`);
  }
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
  checkRemoteSpec(spec);
  const name = remoteDisplayName(spec);
  const client = new RemoteClient(name, spec);
  const dir = await resolveSource(spec.tokenizer, {});
  const config = readJsonFile(join(dir, 'config.json'), false) ?? {};
  const generationConfig = readJsonFile(join(dir, 'generation_config.json'), false);
  const tokenizer = await TextTokenizer.fromFolder(dir, { generationConfig, modelConfig: config });
  const configured = sizeField(config, ['max_position_embeddings', 'n_positions', 'max_sequence_length', 'seq_length'], join(dir, 'config.json'));
  const local = tokenizer.encode(PROBE, { addSpecialTokens: true });
  const stats = { boundedLogprobs: 0, cachedTokens: 0 };
  const bounded = spec.allowBoundedLogprobs === true;
  let protocol;
  let reported: number | null = null;
  let served: unknown[];
  if (spec.engine === 'sglang') {
    protocol = new SGLangProtocol(client, Object.assign(client.traffic, stats), tokenizer.vocabSize, bounded);
    const info = (await client.get('get_model_info', signal)) as { model_path?: unknown } | null;
    if (!info || typeof info !== 'object') throw new RemoteEngineError('malformed', client.urlOf('get_model_info'), `${name}: ${client.urlOf('get_model_info')} did not answer with the model's info; is this an SGLang server?`);
    served = await protocol.probe(PROBE, signal);
  } else {
    const models = (await client.get('v1/models', signal)) as { data?: unknown };
    const listed = (Array.isArray(models?.data) ? models.data : []).filter((m): m is { id: string; max_model_len?: unknown } => !!m && typeof m === 'object' && typeof (m as { id?: unknown }).id === 'string');
    const chosen = spec.model ? listed.find((m) => m.id === spec.model) : listed[0];
    if (!chosen) {
      const names = listed.slice(0, 8).map((m) => `"${client.quote(m.id, 60)}"`).join(', ');
      throw new RemoteEngineError('mismatch', client.urlOf('v1/models'), `${name}: ${client.urlOf('v1/models')} lists ${names || 'no models'}${spec.model ? `, not "${client.quote(spec.model, 60)}"` : ''}. Pass model: the name the server serves.`);
    }
    if (chosen.max_model_len !== undefined && chosen.max_model_len !== null && spec.maxPositions === undefined) {
      const len = chosen.max_model_len;
      if (typeof len !== 'number' || !Number.isInteger(len) || len < 2 || len > Number.MAX_SAFE_INTEGER) {
        throw new RemoteEngineError('malformed', client.urlOf('v1/models'), `${name}: ${client.urlOf('v1/models')} reports max_model_len ${client.quote(String(JSON.stringify(len)), 40)}, which is not a context length (an integer >= 2). Pass maxPositions to say the model's context.`);
      }
      reported = len;
    }
    protocol = new VllmProtocol(client, Object.assign(client.traffic, stats), chosen.id, spec.vllmScoring ?? 'prompt-logprobs', bounded);
    const answer = (await client.post('tokenize', { model: chosen.id, prompt: PROBE, add_special_tokens: true }, signal)) as { tokens?: unknown };
    served = Array.isArray(answer?.tokens) ? answer.tokens : [];
    await protocol.probe(signal);
  }
  if (served.length !== local.length || served.some((id, i) => id !== local[i])) {
    const ids = served.slice(0, 24).map((id) => (Number.isInteger(id) ? String(id) : '?')).join(', ');
    throw new RemoteEngineError(
      'mismatch',
      client.base.toString(),
      `${name}: the server tokenizes ${JSON.stringify(PROBE)} as [${ids}${served.length > 24 ? ', …' : ''}] but the tokenizer in ${dir} gives [${local.slice(0, 24).join(', ')}${local.length > 24 ? ', …' : ''}]: the server serves another model than this tokenizer's. Point tokenizer at the served model's tokenizer files.`,
    );
  }
  const maxPositions = spec.maxPositions ?? reported ?? configured ?? 32_768;
  return new RemoteMember(name, spec.engine, tokenizer, maxPositions, client, protocol);
}
