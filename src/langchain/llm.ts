/**
 * SafeEnsembleLLM: SAFE as a LangChain text-completion model.
 * @module
 */
import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { LLM, type BaseLLMCallOptions, type BaseLLMParams } from '@langchain/core/language_models/llms';
import type { RunnableConfig } from '@langchain/core/runnables';
import type { BaseLanguageModelInput } from '@langchain/core/language_models/base';
import { GenerationChunk, type Generation, type LLMResult } from '@langchain/core/outputs';
import type { EnsembleResult } from '../ensemble/types.js';
import { apiKeySecrets, leavableStream, callOptionsFor, effectiveKnobs, EnsembleHandle, KNOB_KEYS, mergeConfigurable, throwIfAborted, throwIfSignalAborted, callSignal, type SafeEnsembleFields, type SafeEnsembleKnobs } from './common.js';

/** Constructor fields of {@link SafeEnsembleLLM}. */
export interface SafeEnsembleLLMParams extends BaseLLMParams, SafeEnsembleFields {}

/** Call options of {@link SafeEnsembleLLM}: LangChain's plus every SAFE knob. */
export interface SafeEnsembleLLMCallOptions extends BaseLLMCallOptions, SafeEnsembleKnobs {}

/**
 * Several local ONNX models answering as one LangChain LLM, with SAFE.
 *
 * Setup: `npm install langchain-safe-ensemble @langchain/core`, and model folders in the
 * Hugging Face / transformers.js layout (or Hub ids).
 *
 * Constructor args: `models` (the first drafts), optional `drafter`, `loadOptions`, any SAFE
 * knob as a default (`consensusThreshold`, `draftLength`, `sharpening`...), `stop`,
 * `maxNewTokens`. Models load on first use and are shared with every instance built from the
 * same sources and load options.
 *
 * Runtime args: every knob again per call (`llm.invoke(prompt, { consensusThreshold: 0.6 })`),
 * through `withConfig({...})`, or through `configurable: { safeEnsemble: {...} }`; explicit call
 * options win. `stop`, `signal` and `timeout` work as everywhere in LangChain.
 *
 * A string prompt is used as it is (completion semantics); pass `rawPrompt: false` to render
 * it as one user message through each model's chat template.
 *
 * @example
 * ```ts
 * import { PromptTemplate } from '@langchain/core/prompts';
 * import { StringOutputParser } from '@langchain/core/output_parsers';
 * import { SafeEnsembleLLM } from 'langchain-safe-ensemble';
 *
 * const llm = new SafeEnsembleLLM({ models: ['./models/a', './models/b'], maxNewTokens: 128 });
 * const chain = PromptTemplate.fromTemplate('Q: {question}\nA:').pipe(llm).pipe(new StringOutputParser());
 * console.log(await chain.invoke({ question: 'Mia has 37 marbles and finds 25 more. How many?' }));
 * const strict = llm.withConfig({ consensusThreshold: 0.8 });
 * ```
 */
export class SafeEnsembleLLM extends LLM<SafeEnsembleLLMCallOptions> implements SafeEnsembleFields {
  static lc_name(): string {
    return 'SafeEnsembleLLM';
  }

  lc_namespace = ['safe_ensemble', 'llms'];

  /** Served models' API keys are LangChain secrets: never serialized, revived from `SAFE_ENSEMBLE_API_KEY` (or `SAFE_ENSEMBLE_API_KEY_<index>` when the keys differ). */
  get lc_secrets(): { [key: string]: string } | undefined {
    return apiKeySecrets(this.models);
  }

  /** Model sources. */
  models?: SafeEnsembleFields['models'];
  /** The fields this instance was built with. */
  private readonly fields: SafeEnsembleFields;
  private readonly handle: EnsembleHandle;

  constructor(fields: SafeEnsembleLLMParams) {
    super({ ...fields, maxRetries: fields.maxRetries ?? 0 });
    this.fields = fields;
    this.models = fields.models;
    // Paths and knobs serialize; a wrapped, already loaded ensemble does not.
    this.lc_serializable = !fields.ensemble;
    this.handle = new EnsembleHandle(fields);
    // Validate constructor knobs now, so a bad default fails at construction.
    callOptionsFor(this.fields, this.handle.modelCount, {});
  }

  _llmType(): string {
    return 'safe_ensemble';
  }

  get callKeys(): string[] {
    return [...super.callKeys, ...KNOB_KEYS];
  }

  /** The resolved SAFE options of a call (for tracing). */
  invocationParams(options?: this['ParsedCallOptions']): Record<string, unknown> {
    const call = callOptionsFor(this.fields, this.handle.modelCount, options ?? {}, { rawPrompt: true });
    return { models: this.handle.modelNames, ...effectiveKnobs(this.handle.modelCount, call) };
  }

  _identifyingParams(): Record<string, unknown> {
    return { models: this.handle.modelNames, drafter: this.fields.drafter ?? 0, ...this.invocationParams() };
  }

  /** LangChain's stream, made to end at once however the consumer leaves it (also while a request is in flight). */
  _streamIterator(input: BaseLanguageModelInput, options?: this['ParsedCallOptions']): AsyncGenerator<string> {
    return leavableStream((signal) => super._streamIterator(input, { ...options, signal } as this['ParsedCallOptions']), options?.signal);
  }

  protected _separateRunnableConfigFromCallOptionsCompat(options?: Partial<SafeEnsembleLLMCallOptions>): [RunnableConfig, this['ParsedCallOptions']] {
    const [config, callOptions] = super._separateRunnableConfigFromCallOptionsCompat(options);
    return [config, mergeConfigurable(config, callOptions)];
  }

  async _call(prompt: string, options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): Promise<string> {
    return (await this.collect(prompt, options, runManager)).text;
  }

  /** Non-streaming generation through the same path as streaming, keeping the statistics. */
  async _generate(prompts: string[], options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): Promise<LLMResult> {
    const generations: Generation[][] = [];
    for (const prompt of prompts) generations.push([await this.collect(prompt, options, runManager)]);
    return { generations };
  }

  private async collect(prompt: string, options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): Promise<GenerationChunk> {
    let all: GenerationChunk | undefined;
    for await (const chunk of this._streamResponseChunks(prompt, options, runManager)) all = all ? all.concat(chunk) : chunk;
    return all ?? new GenerationChunk({ text: '' });
  }

  async *_streamResponseChunks(prompt: string, options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): AsyncGenerator<GenerationChunk> {
    const signal = callSignal(this.fields, options.signal);
    const engineOptions = callOptionsFor(this.fields, this.handle.modelCount, { ...options, signal }, { rawPrompt: true });
    throwIfSignalAborted(signal);
    const ensemble = await this.handle.get();
    let result: EnsembleResult | undefined;
    for await (const chunk of ensemble.stream(prompt, engineOptions)) {
      if (chunk.type === 'result') {
        result = chunk.result;
        break;
      }
      const piece = new GenerationChunk({ text: chunk.text });
      yield piece;
      await runManager?.handleLLMNewToken(chunk.text, undefined, undefined, undefined, undefined, { chunk: piece });
    }
    throwIfAborted(result!, signal);
    // The last (empty) chunk carries the statistics into the generation info.
    yield new GenerationChunk({ text: '', generationInfo: { finishReason: result!.finishReason, ensemble: result!.stats, ...(result!.trace ? { trace: result!.trace } : {}) } });
  }

  /** Frees the models (when no other instance built from the same sources still uses them). */
  async dispose(): Promise<void> {
    await this.handle.dispose();
  }
}
