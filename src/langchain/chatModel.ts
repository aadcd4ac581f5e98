/**
 * SafeEnsembleChatModel: SAFE as a LangChain chat model, agent-ready (tool calling).
 * @module
 */
import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { BaseChatModel, type BaseChatModelCallOptions, type BaseChatModelParams, type BindToolsInput, type LangSmithParams } from '@langchain/core/language_models/chat_models';
import type { BaseLanguageModelInput } from '@langchain/core/language_models/base';
import type { ModelProfile } from '@langchain/core/language_models/profile';
import { AIMessageChunk, type BaseMessage } from '@langchain/core/messages';
import { ChatGenerationChunk, type ChatResult } from '@langchain/core/outputs';
import type { Runnable, RunnableConfig } from '@langchain/core/runnables';
import { convertToOpenAITool } from '@langchain/core/utils/function_calling';
import { toJsonSchema } from '@langchain/core/utils/json_schema';
import type { StructuredOutputMethodOptions } from '@langchain/core/language_models/base';
import { assembleStructuredOutputPipeline, createContentParser, createFunctionCallingParser } from '@langchain/core/language_models/structured_output';
import { isInteropZodSchema } from '@langchain/core/utils/types';
import { isSerializableSchema } from '@langchain/core/utils/standard_schema';
import { InvalidArgumentError } from '../errors.js';
import { checkToolDefinitions } from '../ensemble/options.js';
import type { EnsembleResult } from '../ensemble/types.js';
import type { ChatMessage } from '../text/tokenizer.js';
import { apiKeySecrets, leavableStream, callOptionsFor, effectiveKnobs, EnsembleHandle, PROVIDER, KNOB_KEYS, mergeConfigurable, throwIfAborted, throwIfSignalAborted, callSignal, type SafeEnsembleFields, type SafeEnsembleKnobs } from './common.js';
import { parseToolCalls, toolCallStart } from './toolCalls.js';

/** Constructor fields of {@link SafeEnsembleChatModel}. */
export interface SafeEnsembleChatModelParams extends BaseChatModelParams, SafeEnsembleFields {}

/** Call options of {@link SafeEnsembleChatModel}: LangChain's plus tools and every SAFE knob. */
export interface SafeEnsembleChatModelCallOptions extends BaseChatModelCallOptions, SafeEnsembleKnobs {
  /** Tools offered to the models' chat templates (OpenAI function format; set by `bindTools`). */
  tools?: Array<Record<string, unknown>>;
}

type MessageLike = BaseMessage & { tool_calls?: Array<{ id?: string; name: string; args: Record<string, unknown> }>; tool_call_id?: string; name?: string };

/** Content blocks that carry no text of their own and are represented elsewhere (tool calls) or not needed (reasoning). */
const SKIPPED_BLOCKS = new Set(['tool_call', 'tool_call_chunk', 'tool_use', 'invalid_tool_call', 'reasoning', 'thinking', 'redacted_thinking']);

/** The text of a message's content; media blocks are refused, since the models read text only. */
function textOf(content: BaseMessage['content'], where: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new InvalidArgumentError('messages', `${where}: content must be a string or an array of content blocks.`);
  return (content as Array<string | { type?: string; text?: string }>)
    .map((b, i) => {
      if (typeof b === 'string') return b;
      const type = b?.type;
      if (type === 'text' || type === 'text-plain') return b.text ?? '';
      if (typeof type === 'string' && SKIPPED_BLOCKS.has(type)) return '';
      throw new InvalidArgumentError(
        'messages',
        `${where}: content block ${i} is of type ${JSON.stringify(type ?? null)}; the ensemble's models read text only. Send text blocks (describe images, audio or files in words), or use a multimodal model for this step.`,
      );
    })
    .join('');
}

/** LangChain messages → the chat-template message shape (system, user, assistant with tool calls, tool). */
export function toChatMessages(messages: readonly BaseMessage[]): ChatMessage[] {
  return messages.map((m, index) => {
    const msg = m as MessageLike;
    const type = msg.getType();
    const content = textOf(msg.content, `messages[${index}] (${type})`);
    switch (type) {
      case 'system':
      case 'developer':
        return { role: 'system', content };
      case 'human':
        return { role: 'user', content };
      case 'ai': {
        const calls = msg.tool_calls ?? [];
        return calls.length
          ? { role: 'assistant', content, tool_calls: calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.args } })) }
          : { role: 'assistant', content };
      }
      case 'tool':
        return { role: 'tool', content, tool_call_id: msg.tool_call_id, ...(msg.name ? { name: msg.name } : {}) };
      default:
        return { role: (msg as { role?: string }).role ?? 'user', content };
    }
  });
}

/**
 * Several local ONNX models answering as one LangChain chat model, with SAFE. Each model renders
 * the conversation (system, human, AI with tool calls, tool results) with its own chat template;
 * tool calls written by the models (Qwen/Hermes `<tool_call>`, Mistral `[TOOL_CALLS]`, Llama
 * JSON) come back as `tool_calls`, so it works as an agent's model.
 *
 * Setup: `npm install langchain-safe-ensemble @langchain/core`, and model folders in the
 * Hugging Face / transformers.js layout with chat templates.
 *
 * Constructor args: `models` (the first drafts), optional `drafter`, `loadOptions`, any SAFE
 * knob as a default, `stop`, `maxNewTokens`. Models load on first use and are shared with
 * every instance built from the same sources and load options.
 *
 * Runtime args: every knob per call, via `withConfig`, or via `configurable: { safeEnsemble }`
 * (explicit call options win); `tools` through `bindTools`; `stop`, `signal`, `timeout`.
 * The ensemble statistics arrive in `response_metadata.ensemble`, token counts in
 * `usage_metadata`.
 *
 * @example
 * ```ts
 * import { createAgent } from 'langchain';
 * import { Calculator } from '@langchain/community/tools/calculator';
 * import { SafeEnsembleChatModel } from 'langchain-safe-ensemble';
 *
 * const model = new SafeEnsembleChatModel({ models: ['./models/a', './models/b'] });
 * const reply = await model.invoke([['system', 'Be brief.'], ['human', 'What is 12 * 7?']]);
 * console.log(reply.content, reply.response_metadata.ensemble.ensembleRatePct);
 * const agent = createAgent({ model, tools: [new Calculator()] });
 * ```
 */
export class SafeEnsembleChatModel extends BaseChatModel<SafeEnsembleChatModelCallOptions, AIMessageChunk> implements SafeEnsembleFields {
  static lc_name(): string {
    return 'SafeEnsembleChatModel';
  }

  lc_namespace = ['safe_ensemble', 'chat_models'];

  /** Served models' API keys are LangChain secrets: never serialized, revived from `SAFE_ENSEMBLE_API_KEY` (or `SAFE_ENSEMBLE_API_KEY_<index>` when the keys differ). */
  get lc_secrets(): { [key: string]: string } | undefined {
    return apiKeySecrets(this.models);
  }

  /** Model sources. */
  models?: SafeEnsembleFields['models'];
  private readonly fields: SafeEnsembleFields;
  private readonly handle: EnsembleHandle;

  constructor(fields: SafeEnsembleChatModelParams) {
    super({ ...fields, maxRetries: fields.maxRetries ?? 0 });
    this.fields = fields;
    this.models = fields.models;
    this.lc_serializable = !fields.ensemble;
    this.handle = new EnsembleHandle(fields);
    callOptionsFor(this.fields, this.handle.modelCount, {});
  }

  _llmType(): string {
    return 'safe_ensemble';
  }

  get callKeys(): string[] {
    return [...super.callKeys, 'tools', ...KNOB_KEYS];
  }

  /** Tool calling through each model's chat template; no schema-constrained decoding. */
  get profile(): ModelProfile {
    return { toolCalling: true, toolChoice: true, structuredOutput: true } as ModelProfile;
  }

  /** The resolved SAFE options of a call (for tracing). */
  invocationParams(options?: this['ParsedCallOptions']): Record<string, unknown> {
    const call = callOptionsFor(this.fields, this.handle.modelCount, options ?? {});
    return { models: this.handle.modelNames, ...effectiveKnobs(this.handle.modelCount, call), ...(call.tools ? { tools: call.tools } : {}) };
  }

  _identifyingParams(): Record<string, unknown> {
    return { models: this.handle.modelNames, drafter: this.fields.drafter ?? 0, ...this.invocationParams() };
  }

  getLsParams(options: this['ParsedCallOptions']): LangSmithParams {
    const params = callOptionsFor(this.fields, this.handle.modelCount, options ?? {});
    return {
      ls_provider: PROVIDER,
      ls_model_name: this.handle.ensembleName,
      ls_model_type: 'chat',
      ls_temperature: params.temperature ?? 0,
      ls_max_tokens: params.maxNewTokens ?? 256,
      ls_stop: params.stop ?? [],
    };
  }

  /** LangChain's stream, made to end at once however the consumer leaves it (also while a request is in flight). */
  _streamIterator(input: BaseLanguageModelInput, options?: this['ParsedCallOptions']): AsyncGenerator<AIMessageChunk> {
    return leavableStream((signal) => super._streamIterator(input, { ...options, signal } as this['ParsedCallOptions']), options?.signal);
  }

  protected _separateRunnableConfigFromCallOptionsCompat(options?: Partial<SafeEnsembleChatModelCallOptions>): [RunnableConfig, this['ParsedCallOptions']] {
    const [config, callOptions] = super._separateRunnableConfigFromCallOptionsCompat(options);
    return [config, mergeConfigurable(config, callOptions)];
  }

  /** Binds tools for the chat templates (what `createAgent` calls). Never stored on the instance. */
  bindTools(tools: BindToolsInput[], kwargs?: Partial<SafeEnsembleChatModelCallOptions>): Runnable<BaseLanguageModelInput, AIMessageChunk, SafeEnsembleChatModelCallOptions> {
    if (!Array.isArray(tools)) throw new InvalidArgumentError('tools', 'bindTools: pass an array of tools (LangChain tools, zod-typed functions or OpenAI function definitions).');
    const converted = tools.map((t, i) => {
      try {
        return convertToOpenAITool(t as never) as unknown as Record<string, unknown>;
      } catch (cause) {
        // Schema conversion recurses: a cyclic or absurdly deep schema must not escape as a RangeError.
        throw new InvalidArgumentError('tools', `bindTools: tools[${i}] cannot be converted to a tool definition (${cause instanceof RangeError ? 'its schema is cyclic or too deep' : (cause as Error)?.message?.slice(0, 120)}); pass a tool with a plain JSON Schema.`);
      }
    });
    checkToolDefinitions(converted);
    return this.withConfig({ tools: converted, ...kwargs });
  }

  /**
   * Structured output that always parses. `functionCalling` (default): a forced call of a tool
   * whose parameters are the schema; `jsonSchema`: the reply is JSON valid against the schema;
   * `jsonMode`: the reply is a JSON object. Every method is grammar-constrained (see
   * the `responseFormat` knob); zod schemas are also checked by their parser. Traces carry
   * `ls_structured_output_format`, as LangChain's providers do.
   *
   * @example
   * ```ts
   * const Answer = z.object({ answer: z.number() });
   * const structured = chat.withStructuredOutput(Answer, { method: 'jsonSchema' });
   * const { answer } = await structured.invoke('Mia has 3 apples and buys 4. How many?');
   * ```
   */
  withStructuredOutput<RunOutput extends Record<string, unknown> = Record<string, unknown>>(
    outputSchema: Parameters<BaseChatModel['withStructuredOutput']>[0],
    config?: StructuredOutputMethodOptions<boolean>,
  ): Runnable<BaseLanguageModelInput, RunOutput> | Runnable<BaseLanguageModelInput, { raw: BaseMessage; parsed: RunOutput }> {
    const method = normalizeMethod(config?.method);
    let schema: Record<string, unknown>;
    try {
      schema = (isInteropZodSchema(outputSchema) || isSerializableSchema(outputSchema as never) ? toJsonSchema(outputSchema as never) : outputSchema) as Record<string, unknown>;
    } catch (cause) {
      throw new InvalidArgumentError('schema', `withStructuredOutput: the schema cannot be converted to JSON Schema (${(cause as Error)?.message?.slice(0, 120)}).`);
    }
    const format = { kwargs: { method }, schema };
    if (method === 'functionCalling') {
      const name = config?.name ?? (typeof (outputSchema as { name?: unknown }).name === 'string' && !isInteropZodSchema(outputSchema) ? (outputSchema as { name: string }).name : 'extract');
      const description = (schema.description as string | undefined) ?? 'A function available to call.';
      const tool = { type: 'function', function: { name, description, parameters: schema } };
      // The call is forced: the reply is one call of this tool, its arguments valid by construction.
      const llm = this.bindTools([tool], { tool_choice: name, ls_structured_output_format: format } as never);
      const parser = createFunctionCallingParser(outputSchema as never, name);
      return assembleStructuredOutputPipeline(llm as never, parser as never, config?.includeRaw, config?.includeRaw ? 'StructuredOutputRunnable' : 'StructuredOutput') as never;
    }
    const responseFormat = method === 'jsonSchema' ? (schema.type === undefined && schema.properties === undefined && schema.anyOf === undefined && schema.$ref === undefined && typeof schema.schema === 'object' ? (schema.schema as Record<string, unknown>) : schema) : 'json';
    const llm = this.withConfig({ responseFormat, ls_structured_output_format: format } as never);
    const parser = createContentParser(outputSchema as never);
    return assembleStructuredOutputPipeline(llm as never, parser as never, config?.includeRaw, config?.includeRaw ? 'StructuredOutputRunnable' : 'StructuredOutput') as never;
  }

  async _generate(messages: BaseMessage[], options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): Promise<ChatResult> {
    // The same chunks, concatenated as a streaming consumer would: invoke() equals stream() + concat().
    let final: ChatGenerationChunk | undefined;
    for await (const chunk of this._streamResponseChunks(messages, options, runManager)) final = final ? final.concat(chunk) : chunk;
    const message = (final?.message ?? new AIMessageChunk({ content: '' })) as AIMessageChunk;
    return { generations: [{ text: typeof message.content === "string" ? message.content : "", message }], llmOutput: { ensemble: (message.response_metadata as { ensemble?: unknown } | undefined)?.ensemble } };
  }

  async *_streamResponseChunks(messages: BaseMessage[], options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): AsyncGenerator<ChatGenerationChunk> {
    const signal = callSignal(this.fields, options.signal);
    const engineOptions = callOptionsFor(this.fields, this.handle.modelCount, { ...options, signal });
    throwIfSignalAborted(signal);
    const chat = toChatMessages(messages);
    const ensemble = await this.handle.get();
    let text = '';
    let emitted = 0;
    let result: EnsembleResult | undefined;
    const emit = async (content: string, extra: Partial<ConstructorParameters<typeof AIMessageChunk>[0] & object> = {}) => {
      const chunk = new ChatGenerationChunk({ text: content, message: new AIMessageChunk({ content, ...extra }) });
      if (content) await runManager?.handleLLMNewToken(content, undefined, undefined, undefined, undefined, { chunk });
      return chunk;
    };
    for await (const piece of ensemble.stream(chat, engineOptions)) {
      if (piece.type === 'result') {
        result = piece.result;
        break;
      }
      text += piece.text;
      // Text that may be the start of a tool call is held back until the end.
      const hold = toolCallStart(text);
      const safe = hold >= 0 ? hold : text.length;
      if (safe > emitted) {
        yield await emit(text.slice(emitted, safe));
        emitted = safe;
      }
    }
    throwIfAborted(result!, signal);
    const parsed = parseToolCalls(text);
    // Valid calls travel as tool_call_chunks (what streaming consumers merge); broken ones are
    // set as invalid_tool_calls directly, since LangChain would "repair" their partial JSON.
    const calls = parsed.toolCalls.map((c) => ({ name: c.name, args: JSON.stringify(c.args), id: c.id }));
    // Broken calls travel as id-less chunks: LangChain collapses those into invalid_tool_calls,
    // so invoke() and stream() + concat() report the same ones.
    const broken = parsed.invalidToolCalls.map((c) => ({ name: c.name, args: c.args ?? '' }));
    const anyCalls = calls.length + parsed.invalidToolCalls.length > 0;
    const rest = anyCalls ? (parsed.content.startsWith(text.slice(0, emitted)) ? parsed.content.slice(emitted) : '') : text.slice(emitted);
    const stats = result!.stats;
    const drafterPrompt = stats.promptTokens[ensemble.drafterIndex] ?? 0;
    const last = await emit(rest, {
      tool_call_chunks: [
        ...calls.map((c, index) => ({ ...c, index, type: 'tool_call_chunk' as const })),
        ...broken.map((c, i) => ({ ...c, index: calls.length + i, type: 'tool_call_chunk' as const })),
      ],
      usage_metadata: { input_tokens: drafterPrompt, output_tokens: stats.generatedTokens, total_tokens: drafterPrompt + stats.generatedTokens },
      response_metadata: {
        model: this.handle.ensembleName,
        model_name: this.handle.ensembleName,
        model_provider: PROVIDER,
        ...(parsed.invalidToolCalls.length ? { tool_call_errors: parsed.invalidToolCalls.map((c) => ({ name: c.name, args: c.args, error: c.error })) } : {}),
        finish_reason: anyCalls ? 'tool_calls' : result!.finishReason,
        ensemble: stats,
        ...(result!.trace ? { trace: result!.trace } : {}),
      },
    });
    yield last;
  }

  /** Frees the models (when no other instance built from the same sources still uses them). */
  async dispose(): Promise<void> {
    await this.handle.dispose();
  }
}

/** LangChain's method names, both spellings. */
function normalizeMethod(method: unknown): 'functionCalling' | 'jsonSchema' | 'jsonMode' {
  if (method === undefined || method === 'functionCalling' || method === 'function_calling') return 'functionCalling';
  if (method === 'jsonSchema' || method === 'json_schema') return 'jsonSchema';
  if (method === 'jsonMode' || method === 'json_mode') return 'jsonMode';
  throw new InvalidArgumentError('method', `withStructuredOutput: unknown method ${JSON.stringify(method)}; use 'functionCalling', 'jsonSchema' or 'jsonMode'.`);
}
