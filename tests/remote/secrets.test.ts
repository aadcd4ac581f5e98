/**
 * API keys of served models are LangChain secrets: never in a serialization, a callback's
 * `serialized`, invocation params, metadata, names or streamed events; revived by `load()` from
 * its secrets map (or the environment, with secretsFromEnv). Traces name models, never folders' paths or URLs
 * (only the serialized constructor kwargs keep the sources as given, to revive the model).
 */
import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import { load } from '@langchain/core/load';
import { HumanMessage } from '@langchain/core/messages';
import { safeEnsembleImportsMap, SafeEnsembleChatModel, SafeEnsembleLLM } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { EngineServer } from '../../tools/fixtures/engineServer';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
const PROMPT = 'Q: Ana has 12 apples and buys 30 more. How many apples does she have now?\nA:';
const KEY = 'sk-secret-4b1d9e77aa';

/** Everything a tracer is handed, as one string. */
class Recorder extends BaseCallbackHandler {
  name = 'recorder';
  seen: string[] = [];
  /** The constructor kwargs (what revives the model: its sources as given, the key as a secret reference). */
  serialized: string[] = [];
  private keep(...values: unknown[]) {
    this.seen.push(JSON.stringify(values, (_k, v: unknown) => (v instanceof AbortSignal ? '[signal]' : v)));
  }
  handleLLMStart(serialized: unknown, prompts: unknown, runId: unknown, parent: unknown, extra: unknown, tags: unknown, metadata: unknown, name: unknown) {
    this.serialized.push(JSON.stringify(serialized));
    this.keep(extra, tags, metadata, name);
  }
  handleChatModelStart(serialized: unknown, messages: unknown, runId: unknown, parent: unknown, extra: unknown, tags: unknown, metadata: unknown, name: unknown) {
    this.serialized.push(JSON.stringify(serialized));
    this.keep(extra, tags, metadata, name);
  }
  handleLLMEnd(output: unknown) {
    this.keep(output);
  }
  handleLLMError(error: unknown) {
    this.keep(String(error));
  }
}

describe('API keys as LangChain secrets', () => {
  let server: EngineServer;
  let reference: string;
  const served = (apiKey = KEY) => ({ engine: 'vllm' as const, url: server.url, tokenizer: MISTRAL, apiKey });
  beforeAll(async () => {
    server = await EngineServer.start({ engine: 'vllm', model: MISTRAL });
    const plain = new SafeEnsembleLLM({ models: [QWEN, MISTRAL], rawPrompt: true, maxNewTokens: 16 });
    reference = await plain.invoke(PROMPT);
    await plain.dispose();
  });
  afterAll(() => server.close());

  it.each(['llm', 'chat'] as const)('%s: toJSON holds a secret reference, never the key; lc_secrets names it', (kind) => {
    const model = kind === 'llm' ? new SafeEnsembleLLM({ models: [QWEN, served()] }) : new SafeEnsembleChatModel({ models: [QWEN, served()] });
    const json = JSON.stringify(model);
    expect(json).not.toContain(KEY);
    expect(model.lc_secrets).toEqual({ 'models.1.apiKey': 'SAFE_ENSEMBLE_API_KEY' });
    const kwargs = (JSON.parse(json) as { kwargs: { models: Array<Record<string, unknown>> } }).kwargs;
    expect(kwargs.models[1]!.api_key ?? kwargs.models[1]!.apiKey).toEqual({ lc: 1, type: 'secret', id: ['SAFE_ENSEMBLE_API_KEY'] });
    // Names and params: model names only (no key, no URL, no folder path).
    for (const params of [model.invocationParams(), model._identifyingParams()]) {
      const text = JSON.stringify(params);
      expect(text).not.toContain(KEY);
      expect(text).not.toContain(QWEN);
      expect(text).not.toContain(server.url);
    }
    expect((model.invocationParams() as { models: string[] }).models).toEqual(['qwen-adder', 'vllm:mistral-subtractor']);
  });

  it('different keys get one secret id each', () => {
    const model = new SafeEnsembleLLM({ models: [served('sk-one-aaaaaaaa'), { ...served('sk-two-bbbbbbbb'), url: `${server.url}/v1` }] });
    expect(model.lc_secrets).toEqual({ 'models.0.apiKey': 'SAFE_ENSEMBLE_API_KEY_0', 'models.1.apiKey': 'SAFE_ENSEMBLE_API_KEY_1' });
    const json = JSON.stringify(model);
    expect(json).not.toContain('sk-one-aaaaaaaa');
    expect(json).not.toContain('sk-two-bbbbbbbb');
  });

  it('load() revives the key from its secrets map; the revived model works and sends it', async () => {
    const original = new SafeEnsembleLLM({ models: [QWEN, served()], rawPrompt: true, maxNewTokens: 16 });
    const revived = await load<SafeEnsembleLLM>(JSON.stringify(original), { optionalImportsMap: safeEnsembleImportsMap, secretsMap: { SAFE_ENSEMBLE_API_KEY: KEY } });
    const seen = server.requests.length;
    try {
      expect(await revived.invoke(PROMPT)).toBe(reference);
      expect(server.requests.slice(seen).every((r) => r.authorization === `Bearer ${KEY}`)).toBe(true);
    } finally {
      await revived.dispose();
      await original.dispose();
    }
  });

  it('no tracer sees the key, a path or the URL: LLM invoke and stream, chat invoke and streamEvents', async () => {
    const recorder = new Recorder();
    const llm = new SafeEnsembleLLM({ models: [QWEN, served()], rawPrompt: true, maxNewTokens: 16, callbacks: [recorder] });
    const chat = new SafeEnsembleChatModel({ models: [QWEN, served()], maxNewTokens: 16, callbacks: [recorder] });
    try {
      expect(await llm.invoke(PROMPT)).toBe(reference);
      for await (const _ of await llm.stream(PROMPT)) void _;
      await chat.invoke([new HumanMessage('Ana has 12 apples and buys 30 more. How many?')]);
      const events: string[] = [];
      for await (const event of chat.streamEvents([new HumanMessage('Ana has 12 apples and buys 30 more. How many?')], { version: 'v2' })) events.push(JSON.stringify(event));
      const everything = recorder.seen.join('\n') + events.join('\n');
      expect(recorder.seen.length).toBeGreaterThan(4);
      expect(recorder.serialized).toHaveLength(4);
      // Serialized kwargs keep the sources as given (to revive the model), the key only as a reference.
      for (const s of recorder.serialized) expect(s).toContain('"id":["SAFE_ENSEMBLE_API_KEY"]');
      expect(recorder.serialized.join('\n')).not.toContain(KEY);
      // Everything else a tracer gets names models, never paths, URLs or keys.
      expect(everything).not.toContain(KEY);
      expect(everything).not.toContain(QWEN);
      expect(everything).not.toContain(MISTRAL);
      expect(everything).not.toContain(server.url);
      expect(everything).toContain('qwen-adder+vllm:mistral-subtractor');
    } finally {
      await llm.dispose();
      await chat.dispose();
    }
  });
});
