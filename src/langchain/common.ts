/**
 * What the two LangChain classes share: constructor fields, call options, knob resolution
 * across the four channels, and loaded ensembles shared between instances.
 * @module
 */
import { resolve } from 'node:path';
import type { RunnableConfig } from '@langchain/core/runnables';
import { InvalidArgumentError } from '../errors.js';
import { OPTION_KEYS, resolveOptions, type EnsembleOptions } from '../ensemble/options.js';
import { SafeEnsemble, type ModelSpec, type RemoteMemberSpec } from '../ensemble/safeEnsemble.js';
import { checkRemoteSpec, isRemoteSpec, modelDisplayName, remoteDisplayName } from '../remote/loadRemote.js';
import type { EnsembleResult } from '../ensemble/types.js';
import type { LoadModelOptions } from '../runtime/loadModel.js';
import { CausalLM } from '../runtime/causalLM.js';
import { validateLoadOptions } from '../runtime/loadOptions.js';

/** SAFE's knobs as LangChain constructor fields and call options (documented on EnsembleOptions). */
export interface SafeEnsembleKnobs
  extends Pick<
    EnsembleOptions,
    | 'strategy'
    | 'baseEnsembler'
    | 'unionTopK'
    | 'unionScoring'
    | 'lookAheadCandidates'
    | 'familyPool'
    | 'temperature'
    | 'topK'
    | 'topP'
    | 'seed'
    | 'rejectionRule'
    | 'temperatureAt'
    | 'draftLength'
    | 'consensusThreshold'
    | 'unanimitySkip'
    | 'stabilityGate'
    | 'gacDrafterGate'
    | 'sharpening'
    | 'weights'
    | 'maxNewTokens'
    | 'trace'
    | 'rawPrompt'
    | 'allowSpecialTokens'
    | 'responseFormat'
  > {}

/** Constructor fields shared by {@link index!SafeEnsembleLLM} and {@link index!SafeEnsembleChatModel}. */
export interface SafeEnsembleFields extends SafeEnsembleKnobs {
  /**
   * Model folders or Hub ids (or `{ source, weight, ...loadOptions }`), or models served by
   * SGLang / vLLM (`{ engine, url, tokenizer, weight? }`); the first drafts unless `drafter` says otherwise.
   */
  models?: Array<string | ModelSpec | RemoteMemberSpec>;
  /** Which model drafts: index in `models` or its source. */
  drafter?: number | string;
  /** Load options for every model (threads, executionProviders, dtype...). */
  loadOptions?: LoadModelOptions;
  /** Most generations the loaded ensemble runs at once (default 8); later calls wait in order. */
  maxConcurrentGenerations?: number;
  /** Wrap an already loaded ensemble instead of loading `models` (not serializable). */
  ensemble?: SafeEnsemble;
  /** Stop strings used on every call (merged with the call's `stop`). */
  stop?: string[];
  /** Alias of `stop` (LangChain convention). */
  stopSequences?: string[];
  /** Alias of `maxNewTokens` (LangChain convention). */
  maxTokens?: number;
  /** Default time limit of every call in milliseconds (a call's own `timeout` or `signal` also applies). */
  timeout?: number;
}

/** The call's signal combined with the instance's default `timeout`, if any. */
export function callSignal(fields: SafeEnsembleFields, signal: AbortSignal | undefined): AbortSignal | undefined {
  if (fields.timeout === undefined) return signal;
  if (!(fields.timeout > 0)) throw new InvalidArgumentError('timeout', `timeout: must be a positive number of milliseconds, got ${fields.timeout}.`);
  const limit = AbortSignal.timeout(fields.timeout);
  return signal ? AbortSignal.any([signal, limit]) : limit;
}

/** Names of the knobs, for picking them out of call options and `configurable.safeEnsemble`. */
export const KNOB_KEYS = OPTION_KEYS.filter((k) => k !== 'signal' && k !== 'stop' && k !== 'tools' && k !== 'recomputeCaches' && k !== 'constraint' && k !== 'toolChoice') as ReadonlyArray<keyof SafeEnsembleKnobs>;

/** Copies the defined knob fields of `source`. */
export function pickKnobs(source: object | undefined | null): SafeEnsembleKnobs {
  const out: Record<string, unknown> = {};
  if (!source || typeof source !== 'object') return out;
  for (const k of KNOB_KEYS) {
    const v = (source as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * Moves `configurable.safeEnsemble` knobs into the call options; explicit call options win.
 * LangChain strips `configurable` before the model's code runs, so this runs in the
 * `_separateRunnableConfigFromCallOptionsCompat` override of both classes.
 */
export function mergeConfigurable<T extends object>(config: RunnableConfig, callOptions: T): T {
  const fromConfig = (config.configurable as { safeEnsemble?: object } | undefined)?.safeEnsemble;
  if (!fromConfig) return callOptions;
  if (typeof fromConfig !== 'object') throw new InvalidArgumentError('configurable.safeEnsemble', 'configurable.safeEnsemble: must be an object of SAFE options, e.g. { consensusThreshold: 0.6 }.');
  const known = new Set<string>(KNOB_KEYS);
  for (const key of Object.keys(fromConfig)) {
    if (!known.has(key)) throw new InvalidArgumentError(`configurable.safeEnsemble.${key.slice(0, 40)}`, `configurable.safeEnsemble: ${JSON.stringify(key.slice(0, 40))} is not a SAFE option; valid options are ${KNOB_KEYS.join(', ')}.`);
  }
  const explicit = Object.fromEntries(Object.entries(callOptions).filter(([, v]) => v !== undefined));
  return { ...pickKnobs(fromConfig), ...explicit } as T;
}

/** The engine options of one call: constructor knobs < call knobs; stops merged. Validated. */
export function callOptionsFor(
  fields: SafeEnsembleFields,
  modelCount: number,
  call: SafeEnsembleKnobs & { stop?: string[]; signal?: AbortSignal; tools?: unknown[]; tool_choice?: unknown },
  defaults: Partial<EnsembleOptions> = {},
): EnsembleOptions {
  const stop = [...(fields.stop ?? []), ...(fields.stopSequences ?? []), ...(call.stop ?? [])];
  const options: EnsembleOptions = {
    ...defaults,
    ...(fields.maxTokens !== undefined ? { maxNewTokens: fields.maxTokens } : {}),
    ...pickKnobs(fields),
    ...pickKnobs(call),
    ...(stop.length ? { stop: [...new Set(stop)] } : {}),
    ...(call.signal ? { signal: call.signal } : {}),
    ...(call.tools?.length ? { tools: call.tools } : {}),
    ...(call.tools?.length && call.tool_choice !== undefined ? { toolChoice: call.tool_choice as EnsembleOptions['toolChoice'] } : {}),
  };
  resolveOptions(modelCount, options); // fail before any model runs
  return options;
}

/** The environment variable (and LangChain secret id) an API key of a served model is revived from. */
export const API_KEY_SECRET = 'SAFE_ENSEMBLE_API_KEY';

/**
 * LangChain's `lc_secrets` for the served models' API keys: the path of each key in the
 * constructor fields, mapped to the secret id it is serialized as (and revived from, by
 * `load()`'s `secretsMap` or the environment). One id when every key is the same,
 * `SAFE_ENSEMBLE_API_KEY_<index>` per model otherwise.
 */
export function apiKeySecrets(models: SafeEnsembleFields['models']): Record<string, string> {
  const keyed = (Array.isArray(models) ? models : []).flatMap((m, i) => (isRemoteSpec(m) && typeof m.apiKey === 'string' ? [[i, m.apiKey] as const] : []));
  const one = new Set(keyed.map(([, key]) => key)).size <= 1;
  return Object.fromEntries(keyed.map(([i]) => [`models.${i}.apiKey`, one ? API_KEY_SECRET : `${API_KEY_SECRET}_${i}`]));
}

/** The provider name in traces and response metadata. */
export const PROVIDER = 'safe_ensemble';

/** Every SAFE knob as it takes effect in a call (defaults filled in), for traces. */
export function effectiveKnobs(modelCount: number, call: EnsembleOptions): Record<string, unknown> {
  // The constraint object stays out (it holds caches); the format it came from goes in as given.
  const { signal: _signal, tools: _tools, recomputeCaches: _debug, constraint: _constraint, toolChoice, ...knobs } = resolveOptions(modelCount, call);
  void _signal;
  void _tools;
  void _debug;
  void _constraint;
  return { ...knobs, ...(call.responseFormat !== undefined ? { responseFormat: call.responseFormat } : {}), ...(toolChoice !== undefined ? { toolChoice } : {}) };
}

/** Why a LangChain stream's generation was stopped when its consumer left. */
const STREAM_LEFT = 'the stream was left before the generation ended';

/**
 * A LangChain stream that can be left at once. LangChain's stream iterators are async
 * generators: a `return()` (what `break`, a throw in the consumer or `stream.return()` call)
 * waits behind a `next()` still pending — on a stalled server, until its timeout. This wrapper
 * passes a signal of its own to the generation and fires it on `return()`/`throw()`, which cuts
 * the requests in flight, and does not wait for a pending `next()` to settle.
 */
export function leavableStream<T>(open: (signal: AbortSignal) => AsyncGenerator<T>, callerSignal: AbortSignal | undefined): AsyncGenerator<T> {
  const leave = new AbortController();
  const inner = open(callerSignal ? AbortSignal.any([callerSignal, leave.signal]) : leave.signal);
  let pending = 0;
  let left = false;
  const close = async (): Promise<void> => {
    if (left) return;
    left = true;
    leave.abort(new Error(STREAM_LEFT));
    const closing = inner.return(undefined).catch(() => undefined);
    // A pending next() ends on its own once the abort lands; with none, closing is quick.
    if (pending === 0) await closing;
  };
  // Typed by assertion: whether AsyncGenerator declares Symbol.asyncDispose depends on the lib types in use.
  const stream = {
    async next(...args: [] | [unknown]): Promise<IteratorResult<T>> {
      if (left) return { done: true, value: undefined };
      pending++;
      try {
        return await inner.next(...args);
      } finally {
        pending--;
      }
    },
    async return(): Promise<IteratorResult<T>> {
      await close();
      return { done: true, value: undefined };
    },
    async throw(error: unknown): Promise<IteratorResult<T>> {
      await close();
      throw error;
    },
    [Symbol.asyncIterator](): AsyncGenerator<T> {
      return stream;
    },
    async [Symbol.asyncDispose]() {
      await close();
    },
  } as AsyncGenerator<T>;
  return stream;
}

/** The error LangChain callers get for an aborted call (signal or timeout): name `AbortError`. */
export function abortError(signal: AbortSignal | undefined): Error {
  const reason = signal?.reason as { name?: string; message?: string } | undefined;
  const error = new Error(`Aborted${reason?.message ? `: ${reason.message}` : ''}`, { cause: signal?.reason });
  error.name = 'AbortError';
  return error;
}

/** Throws an {@link abortError} when the signal is aborted already. */
export function throwIfSignalAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** Throws an {@link abortError} when the generation stopped because of an abort. */
export function throwIfAborted(result: EnsembleResult, signal: AbortSignal | undefined): void {
  if (result.finishReason === 'abort') throw abortError(signal);
}

interface Shared {
  ensemble: Promise<SafeEnsemble>;
  users: number;
}

/** Ensembles loaded from the same sources and load options, shared by every instance. */
const registry = new Map<string, Shared>();

/** Loads (or wraps) the ensemble of an instance lazily and shares it between instances. */
export class EnsembleHandle {
  private shared: Shared | null = null;
  private readonly key: string | null;
  /** Number of models, known without loading them. */
  readonly modelCount: number;
  /** Model names (folder names, Hub ids, served models' names; never paths or URLs), for traces and LangSmith params. */
  readonly modelNames: string[];

  /** The ensemble's name in traces and response metadata: its model names joined by `+`. */
  get ensembleName(): string {
    return this.modelNames.join('+');
  }

  constructor(private readonly fields: SafeEnsembleFields) {
    if (fields.ensemble) {
      if (!(fields.ensemble instanceof SafeEnsemble)) throw new InvalidArgumentError('ensemble', 'ensemble: must be a SafeEnsemble instance.');
      this.key = null;
      this.modelCount = fields.ensemble.models.length;
      this.modelNames = fields.ensemble.models.map((m) => (m instanceof CausalLM ? modelDisplayName(m.info.source) : m.name));
      return;
    }
    if (!Array.isArray(fields.models) || fields.models.length === 0) {
      throw new InvalidArgumentError('models', 'models: pass model folders or Hub ids (e.g. { models: ["./a", "./b"] }), or an existing SafeEnsemble as `ensemble`.');
    }
    this.modelCount = fields.models.length;
    // Bad declarations and load options fail here, at construction, not at the first call.
    validateLoadOptions(fields.loadOptions, () => undefined);
    const limit = fields.maxConcurrentGenerations;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 4096)) {
      throw new InvalidArgumentError('maxConcurrentGenerations', `maxConcurrentGenerations: expected an integer from 1 to 4096, got ${String(limit)}.`);
    }
    fields.models.forEach((m, i) => {
      if (typeof m === 'string') {
        if (m.trim() === '') throw new InvalidArgumentError('models', `models[${i}]: an empty string is not a model folder or Hub id.`);
        return;
      }
      if (isRemoteSpec(m)) return checkRemoteSpec(m, `models[${i}]`);
      if (!m || typeof m !== 'object' || typeof m.source !== 'string') throw new InvalidArgumentError('models', `models[${i}]: expected a path/Hub id, { source, weight?, ...loadOptions }, or a served model { engine, url, tokenizer }.`);
      const { source: _s, weight: _w, ...own } = m;
      void _s;
      void _w;
      validateLoadOptions(own, () => undefined);
    });
    this.modelNames = fields.models.map((m) => (typeof m === 'string' ? modelDisplayName(m) : isRemoteSpec(m) ? remoteDisplayName(m) : modelDisplayName(m.source)));
    const specs = fields.models.map((m) => (typeof m === 'string' ? { source: resolve(m) } : isRemoteSpec(m) ? { ...m, tokenizer: resolve(m.tokenizer) } : { ...m, source: resolve(m.source) }));
    this.key = JSON.stringify({ specs, drafter: fields.drafter ?? 0, load: fields.loadOptions ?? {}, concurrency: fields.maxConcurrentGenerations ?? null });
  }

  /** The ensemble, loading it on first use. */
  async get(): Promise<SafeEnsemble> {
    if (this.fields.ensemble) return this.fields.ensemble;
    if (!this.shared) {
      let entry = registry.get(this.key!);
      if (!entry) {
        const loading = SafeEnsemble.load({ models: this.fields.models!, drafter: this.fields.drafter, loadOptions: this.fields.loadOptions, maxConcurrentGenerations: this.fields.maxConcurrentGenerations });
        entry = { ensemble: loading, users: 0 };
        registry.set(this.key!, entry);
        loading.catch(() => registry.delete(this.key!)); // a failed load may be retried
      }
      entry.users++;
      this.shared = entry;
    }
    return this.shared.ensemble;
  }

  /** Releases this instance's use; the models are freed when no instance uses them. */
  async dispose(): Promise<void> {
    if (this.fields.ensemble) return this.fields.ensemble.dispose();
    const entry = this.shared;
    if (!entry) return;
    this.shared = null;
    if (--entry.users > 0) return;
    if (registry.get(this.key!) === entry) registry.delete(this.key!);
    const ensemble = await entry.ensemble.catch(() => null);
    await ensemble?.dispose();
  }
}
