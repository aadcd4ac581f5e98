/**
 * SafeEnsemble: K models — local ONNX sessions or models served by SGLang / vLLM, mixed
 * freely — generating as one with SAFE (generate–verify–ensemble).
 * @module
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { DisposedError, InvalidArgumentError, TokenizerError } from '../errors.js';
import { utf8 } from '../text/bytes.js';
import { CausalLM } from '../runtime/causalLM.js';
import { defaultExecution, loadModel, type LoadModelOptions } from '../runtime/loadModel.js';
import { isRemoteSpec, loadRemoteModel, type RemoteModelSpec } from '../remote/loadRemote.js';
import type { EnsembleMember, SequenceModel } from '../member/member.js';
import { FifoGate } from '../member/fifoGate.js';
import { GacUnion } from './aggregate.js';
import { Generation } from './generation.js';
import { resolveOptions, type EnsembleOptions, type ResolvedOptions } from './options.js';
import { toolCallConstraint } from './toolChoice.js';
import { renderPrompt, validateInput, type EnsembleInput } from './prompt.js';
import type { EnsembleChunk, EnsembleResult } from './types.js';
import { ChunkFeed, FeedIterator } from './chunkFeed.js';
import { Vocabulary } from './vocabulary.js';

/** A model to load, with its own load options and ensemble weight. */
export interface ModelSpec extends LoadModelOptions {
  /** Model folder or Hub id. */
  source: string;
  /** Ensemble weight (relative; normalized over all models). */
  weight?: number;
}

/** Ensemble-level settings beyond the per-call options. */
export interface SafeEnsembleConfig extends EnsembleOptions {
  /** Which model drafts: index in `models` or its source; default the first. */
  drafter?: number | string;
  /**
   * Most generations running at once (default 8);
   * later calls wait their turn in call order. Each running generation holds its own KV cache
   * per local model (see the README's "Many generations at once").
   */
  maxConcurrentGenerations?: number;
}

/** Generations an ensemble runs at once unless `maxConcurrentGenerations` says otherwise. */
export const DEFAULT_MAX_CONCURRENT_GENERATIONS = 8;

/** A model served by SGLang or vLLM, with its ensemble weight. */
export interface RemoteMemberSpec extends RemoteModelSpec {
  /** Ensemble weight (relative; normalized over all models). */
  weight?: number;
}

/** Options of {@link SafeEnsemble.load}. */
export interface SafeEnsembleLoadOptions extends SafeEnsembleConfig {
  /** Models (at least two for every strategy but `single`): local folders / Hub ids, or served models. */
  models: Array<string | ModelSpec | RemoteMemberSpec>;
  /** Load options shared by every model (a model's own spec wins). */
  loadOptions?: LoadModelOptions;
}

/**
 * Several local ONNX language models that generate as one with SAFE.
 *
 * @example
 * ```ts
 * const ensemble = await SafeEnsemble.load({ models: ['./models/a', './models/b'], consensusThreshold: 0.5 });
 * const result = await ensemble.generate('Mia has 37 marbles. She finds 25 more. How many now?');
 * console.log(result.text, result.stats.ensembleRatePct);
 * for await (const chunk of ensemble.stream('Tell me a story', { maxNewTokens: 64 })) {
 *   if (chunk.type === 'text') process.stdout.write(chunk.text);
 * }
 * await ensemble.dispose();
 * ```
 */
export class SafeEnsemble {
  /** The models, in the order given. */
  readonly models: readonly EnsembleMember[];
  /** Index of the drafter in {@link models}. */
  readonly drafterIndex: number;
  /** Most generations running at once. */
  readonly maxConcurrentGenerations: number;
  private readonly defaults: SafeEnsembleConfig;
  /** Admits generations in call order, at most {@link maxConcurrentGenerations} at once. */
  private readonly admission: FifoGate;
  /** Members without {@link EnsembleMember.openSequence}: one generation at a time each. */
  private readonly exclusive = new Map<EnsembleMember, FifoGate>();
  /** Stop switches of the generations admitted or waiting, and their runs. */
  private readonly running = new Map<AbortController, Promise<void>>();
  /** Generations past admission, running on the members now. */
  private admitted = 0;
  private union: GacUnion | null = null;
  private disposed = false;

  /**
   * Wraps already loaded models. The ensemble owns them: {@link dispose} disposes them.
   * @throws InvalidArgumentError for an empty or duplicated model list or bad defaults.
   */
  constructor(models: readonly EnsembleMember[], config: SafeEnsembleConfig = {}) {
    if (!Array.isArray(models) || models.length === 0) throw new InvalidArgumentError('models', 'models: pass at least one loaded model.');
    const seen = new Set<EnsembleMember>();
    for (const m of models) {
      if (seen.has(m)) throw new InvalidArgumentError('models', `models: model "${m.name}" appears twice; each model can take part once (load it twice to use two copies).`);
      seen.add(m);
    }
    for (const m of models) {
      if (m.disposed) throw new DisposedError(`Model "${m.name}"`);
      if (m.tokenizer.eosTokenIds.length === 0) {
        throw new TokenizerError(`model "${m.name}": its tokenizer defines no end-of-sequence token, so generation could never stop on its own. Set "eos_token" in tokenizer_config.json or "eos_token_id" in generation_config.json.`);
      }
      checkRoundTrip(m);
    }
    this.models = [...models];
    this.drafterIndex = resolveDrafter(config.drafter, this.models);
    const { drafter: _drafter, maxConcurrentGenerations, ...defaults } = config;
    void _drafter;
    const limit = maxConcurrentGenerations ?? DEFAULT_MAX_CONCURRENT_GENERATIONS;
    if (!Number.isInteger(limit) || limit < 1 || limit > 4096) {
      throw new InvalidArgumentError('maxConcurrentGenerations', `maxConcurrentGenerations: expected an integer from 1 to 4096, got ${String(maxConcurrentGenerations)}.`);
    }
    this.maxConcurrentGenerations = limit;
    this.admission = new FifoGate(limit);
    for (const m of this.models) if (typeof m.openSequence !== 'function') this.exclusive.set(m, new FifoGate(1));
    // Validate the defaults now, so a bad constructor option fails before any generation.
    this.checkWholeRows(resolveOptions(this.models.length, defaults));
    this.defaults = defaults;
  }

  /** GaC maps whole distributions: every member must be able to return whole rows. */
  private checkWholeRows(options: ResolvedOptions): void {
    const gac = options.strategy === 'gac-threshold' || (options.strategy !== 'single' && options.baseEnsembler === 'gac');
    const sparse = gac ? this.models.find((m) => !m.wholeRows) : undefined;
    if (sparse) {
      throw new InvalidArgumentError(
        options.strategy === 'gac-threshold' ? 'strategy' : 'baseEnsembler',
        `${options.strategy === 'gac-threshold' ? "strategy 'gac-threshold'" : "baseEnsembler 'gac'"} needs whole probability rows, but model "${sparse.name}" is served remotely and returns top-k log-probabilities only. Use baseEnsembler 'unite' (the default), or make every member a local model.`,
      );
    }
  }

  /** Loads every model and builds the ensemble. On failure, models already loaded are freed. */
  static async load(options: SafeEnsembleLoadOptions): Promise<SafeEnsemble> {
    if (!options || !Array.isArray(options.models) || options.models.length === 0) {
      throw new InvalidArgumentError('models', 'models: pass at least one model folder or Hub id.');
    }
    const specs = options.models.map((m, i) => {
      const spec = typeof m === 'string' ? { source: m } : m;
      if (isRemoteSpec(spec)) return spec;
      if (!spec || typeof spec.source !== 'string') throw new InvalidArgumentError('models', `models[${i}]: expected a path/Hub id, { source, ...loadOptions }, or a served model { engine: 'sglang' | 'vllm', url, tokenizer }.`);
      return spec;
    });
    const keys = specs.map((s) => (isRemoteSpec(s) ? `${s.engine}:${s.url}` : resolve(s.source)));
    const dup = keys.findIndex((k, i) => keys.indexOf(k) !== i);
    if (dup >= 0) throw new InvalidArgumentError('models', `models: "${keys[dup]}" is listed twice; list each model once.`);
    const { models: _m, loadOptions, ...config } = options;
    void _m;
    const weights = specs.some((s) => s.weight !== undefined) ? specs.map((s) => s.weight ?? 1) : config.weights;
    const { maxConcurrentGenerations: _limit, ...perCall } = config;
    void _limit;
    resolveOptions(specs.length, { ...perCall, drafter: undefined, weights } as EnsembleOptions);
    // Members load concurrently (each worker opens its session while the next tokenizer loads).
    // Worker members run at the same time, so by default they share the cores instead of each
    // starting a thread per core.
    const cores = availableParallelism();
    const locals = specs.filter((s) => !isRemoteSpec(s)).length;
    const settled = await Promise.allSettled(
      specs.map((spec): Promise<EnsembleMember> => {
        if (isRemoteSpec(spec)) {
          const { weight: _w, ...remote } = spec;
          void _w;
          return loadRemoteModel(remote);
        }
        const { source, weight: _w, ...own } = spec;
        void _w;
        const merged: LoadModelOptions = { ...loadOptions, ...own };
        if (merged.threads === undefined && (merged.execution ?? defaultExecution()) === 'worker') merged.threads = Math.max(1, Math.floor(cores / locals));
        return loadModel(source, merged);
      }),
    );
    const loaded = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    try {
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const drafter = typeof config.drafter === 'string' ? keys.indexOf(resolve(config.drafter)) : config.drafter;
      return new SafeEnsemble(loaded, { ...config, weights, drafter: drafter === -1 ? config.drafter : drafter });
    } catch (error) {
      await Promise.all(loaded.map((m) => m.dispose()));
      throw error;
    }
  }

  /** Resolves and validates options for one call (defaults, then `options`). */
  resolveOptions(options?: EnsembleOptions): ResolvedOptions {
    const resolved = resolveOptions(this.models.length, this.defaults, options);
    if (resolved.strategy !== 'single' && this.models.length < 2) {
      throw new InvalidArgumentError('strategy', `strategy: '${resolved.strategy}' needs at least two models; with one model use strategy 'single'.`);
    }
    this.checkWholeRows(resolved);
    return resolved;
  }

  /** Generates a response. */
  async generate(input: EnsembleInput, options?: EnsembleOptions): Promise<EnsembleResult> {
    let result: EnsembleResult | undefined;
    for await (const chunk of this.stream(input, options)) if (chunk.type === 'result') result = chunk.result;
    return result!;
  }

  /**
   * Streams committed text (never half a character, never a piece of a stop string) and ends
   * with the result. Calls on one ensemble run at once, up to `maxConcurrentGenerations`
   * (later ones start in call order as earlier ones end); what a call generates does not depend
   * on what else runs.
   *
   * The generation runs on its own once the first chunk is asked for, until it ends, whatever
   * the reader does. Leaving the loop (`break`, a throw, `return()`)
   * stops it at the next forward-pass boundary; an iterator dropped without `return()` lets
   * it run to its own end (`maxNewTokens`, EOS or a stop string; earlier when the signal
   * fires or the iterator is garbage-collected), and then its place is free again.
   */
  stream(input: EnsembleInput, options?: EnsembleOptions): AsyncGenerator<EnsembleChunk, void> {
    const leave = new AbortController();
    // return() and throw() settle at once, even while a next() waits on a slow pass or server.
    const iterator = new FeedIterator<EnsembleChunk>(
      () => {
        this.assertUsable();
        validateInput(input);
        const resolved = this.resolveOptions(options);
        const feed = new ChunkFeed<EnsembleChunk>();
        const run = this.runGeneration(input, resolved, feed, leave).finally(() => this.running.delete(leave));
        this.running.set(leave, run);
        return feed;
      },
      // The reader left (or finished): a generation still running stops at its next pass, and
      // requests to served models in flight are cut.
      () => leave.abort(CONSUMER_LEFT),
    );
    abandoned.register(iterator, leave);
    return iterator;
  }

  /** One generation from admission to release; never rejects (errors go to the feed). */
  private async runGeneration(input: EnsembleInput, resolved: ResolvedOptions, feed: ChunkFeed<EnsembleChunk>, leave: AbortController): Promise<void> {
    const releases: Array<() => void> = [];
    try {
      // A caller's signal that fires while the call waits ends it there, like the reader leaving.
      const waiting = resolved.signal ? AbortSignal.any([resolved.signal, leave.signal]) : leave.signal;
      const taken = await this.takeModels(waiting, releases);
      if (!taken) {
        if (leave.signal.reason === DISPOSING) throw new DisposedError('SafeEnsemble');
        if (leave.signal.aborted) return feed.end(); // the reader left while the call was queued
      }
      // Not admitted because the caller's signal fired: the generation below ends at once with
      // finish 'abort', before any pass, so reading the members themselves is safe.
      const models = taken ?? this.models;
      this.admitted++;
      releases.push(() => this.admitted--);
      const signal = waiting;
      // Every model needs room for at least one more token; longer prompts fail before any forward pass.
      const prompts = this.models.map((m) => renderPrompt(m, input, { rawPrompt: resolved.rawPrompt, tools: resolved.tools, allowSpecialTokens: resolved.allowSpecialTokens, reserve: 1 }));
      // Offered tools: calls constrained to them, as the drafter's template writes calls.
      const constraint = resolved.constraint ?? (resolved.tools?.length ? toolCallConstraint(resolved.tools, resolved.toolChoice, this.models[this.drafterIndex]!.tokenizer.chatTemplate) ?? undefined : undefined);
      const generation = new Generation(models, prompts, this.drafterIndex, { ...resolved, signal, constraint }, () => this.gacUnion(), () => this.admitted > 1);
      const run = generation.run();
      for (;;) {
        const step = await run.next();
        if (step.done) {
          if (leave.signal.reason === DISPOSING && !resolved.signal?.aborted) throw new DisposedError('SafeEnsemble');
          feed.push({ type: 'result', result: step.value });
          break;
        }
        feed.push({ type: 'text', text: step.value });
      }
      feed.end();
    } catch (error) {
      feed.fail(error);
    } finally {
      for (const release of releases.reverse()) release();
    }
  }

  /**
   * Waits for this generation's turn and gives it its view of every model: a sequence of its
   * own where the member opens them, else the member itself, held for this generation alone
   * (gates taken in model order, so generations never deadlock). Null when `signal` fired first.
   * What `releases` collects undoes it all, whatever happens.
   */
  private async takeModels(signal: AbortSignal, releases: Array<() => void>): Promise<SequenceModel[] | null> {
    try {
      releases.push(await this.admission.enter(signal));
      for (const m of this.models) {
        const gate = this.exclusive.get(m);
        if (gate) releases.push(await gate.enter(signal));
      }
    } catch (error) {
      if (signal.aborted) return null;
      throw error;
    }
    this.assertUsable();
    return this.models.map((m) => {
      if (!this.exclusive.has(m)) {
        const sequence = m.openSequence!();
        releases.push(() => sequence.close());
        return sequence;
      }
      return m;
    });
  }

  /**
   * Frees every model. Generations still running stop at their next forward pass and queued
   * ones never start (both end with {@link DisposedError}); further calls throw it too.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const leave of this.running.keys()) leave.abort(DISPOSING);
    await Promise.all(this.running.values());
    await Promise.all(this.models.map((m) => m.dispose()));
  }

  private gacUnion(): GacUnion {
    this.union ??= new GacUnion(this.models.map((m) => Vocabulary.of(m.tokenizer)));
    return this.union;
  }

  private assertUsable(): void {
    if (this.disposed) throw new DisposedError('SafeEnsemble');
  }
}

/** Abort reasons of a generation's own stop switch. */
const CONSUMER_LEFT = 'the stream was left before the generation ended';
const DISPOSING = 'the ensemble was disposed';

/** Stops the generation of a stream iterator that was dropped without being closed. */
const abandoned = new FinalizationRegistry<AbortController>((leave) => leave.abort(CONSUMER_LEFT));

function resolveDrafter(drafter: number | string | undefined, models: readonly EnsembleMember[]): number {
  if (drafter === undefined) return 0;
  if (typeof drafter === 'number') {
    if (!Number.isInteger(drafter) || drafter < 0 || drafter >= models.length) {
      throw new InvalidArgumentError('drafter', `drafter: index ${drafter} is out of range (0..${models.length - 1}).`);
    }
    return drafter;
  }
  const i = models.findIndex((m) => m.name === drafter || (m instanceof CausalLM && m.info.dir === resolve(drafter)));
  if (i < 0) throw new InvalidArgumentError('drafter', `drafter: "${drafter}" is not one of the models (${models.map((m) => m.name).join(', ')}).`);
  return i;
}

/** Text every ensemble member's tokenizer must reproduce byte for byte. */
const ROUND_TRIP_PROBE = 'Hello, world! 12 + 30 = 42. Café, naïve, 日本語 🎉\n';

/**
 * SAFE compares models through the bytes their tokens stand for; a tokenizer whose tokens do
 * not reproduce the text (lossy normalization, unknown-token output) cannot take part.
 */
function checkRoundTrip(m: EnsembleMember): void {
  const tok = m.tokenizer;
  let ok = false;
  let detail = '';
  try {
    const ids = tok.encode(ROUND_TRIP_PROBE);
    const bytes = tok.idsToBytes(ids);
    const text = new TextDecoder().decode(bytes.subarray(bytes.length - utf8(ROUND_TRIP_PROBE).length));
    ok = text === ROUND_TRIP_PROBE && tok.kind !== 'other';
    detail = ok ? '' : `it gives ${JSON.stringify(new TextDecoder().decode(bytes))}`;
  } catch (error) {
    detail = (error as Error).message;
  }
  if (!ok) {
    throw new TokenizerError(`model "${m.name}": its tokenizer does not reproduce the test string ${JSON.stringify(ROUND_TRIP_PROBE)} (${detail}). SAFE needs byte-exact tokenizers (byte-level BPE or sentencepiece with byte fallback).`);
  }
}
