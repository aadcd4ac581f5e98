/**
 * Declaring remote members where users declare models: SafeEnsemble.load, the LangChain classes
 * and the CLI (`--model sglang:URL --tokenizer DIR`), mixed with local models.
 */
import { HumanMessage } from '@langchain/core/messages';
import { SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { main } from '../../src/cli/main';
import { modelsFromFlags } from '../../src/cli/generate';
import { EngineServer } from '../../tools/fixtures/engineServer';
import { sink } from '../helpers/sink';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
const QUESTION = 'Ana has 12 apples and buys 30 more. How many apples does she have now?';


describe('declaring remote members', () => {
  let sglang: EngineServer;
  let vllm: EngineServer;
  let reference: string;
  beforeAll(async () => {
    sglang = await EngineServer.start({ engine: 'sglang', model: QWEN });
    vllm = await EngineServer.start({ engine: 'vllm', model: MISTRAL });
    const local = await SafeEnsemble.load({ models: [QWEN, MISTRAL] });
    reference = (await local.generate(QUESTION, { maxNewTokens: 48 })).text;
    await local.dispose();
  });
  afterAll(async () => {
    await sglang.close();
    await vllm.close();
  });

  it('SafeEnsemble.load mixes { engine, url, tokenizer } entries with local folders', async () => {
    const ensemble = await SafeEnsemble.load({ models: [{ engine: 'sglang', url: sglang.url, tokenizer: QWEN, weight: 1 }, MISTRAL] });
    try {
      // Named by the model (its tokenizer folder), not the server's URL.
      expect(ensemble.models[0]!.name).toBe('sglang:qwen-adder');
      const r = await ensemble.generate(QUESTION, { maxNewTokens: 48 });
      expect(r.text).toBe(reference);
      expect(r.stats.network![0]!.requests).toBeGreaterThan(0);
      expect(r.stats.network![1]).toBeNull();
      await expect(SafeEnsemble.load({ models: [{ engine: 'sglang', url: sglang.url, tokenizer: QWEN }, { engine: 'sglang', url: sglang.url, tokenizer: QWEN }] })).rejects.toThrow(/listed twice/);
    } finally {
      await ensemble.dispose();
    }
  });

  it('SafeEnsembleLLM and SafeEnsembleChatModel take remote entries', async () => {
    const llm = new SafeEnsembleLLM({ models: [{ engine: 'sglang', url: sglang.url, tokenizer: QWEN }, { engine: 'vllm', url: vllm.url, tokenizer: MISTRAL }], maxNewTokens: 48, rawPrompt: false });
    const chat = new SafeEnsembleChatModel({ models: [{ engine: 'sglang', url: sglang.url, tokenizer: QWEN }, MISTRAL], maxNewTokens: 48 });
    try {
      expect(await llm.invoke(QUESTION)).toBe(reference);
      const message = await chat.invoke([new HumanMessage(QUESTION)]);
      expect(message.content).toBe(reference);
      const streamed: string[] = [];
      for await (const chunk of await llm.stream(QUESTION)) streamed.push(chunk);
      expect(streamed.join('')).toBe(reference);
    } finally {
      await llm.dispose();
      await chat.dispose();
    }
  });

  it('the CLI: --model sglang:URL --tokenizer DIR next to a local --model', async () => {
    const out = sink();
    const err = sink();
    const code = await main(['--model', `sglang:${sglang.url}`, '--tokenizer', QWEN, '--model', `vllm:${vllm.url}`, '--tokenizer', MISTRAL, '--max-new-tokens', '48', QUESTION], out, err);
    expect(err.text()).toContain(`sglang:${sglang.url}`);
    expect(code).toBe(0);
    expect(out.text().trim()).toBe(reference.trim());
  });

  it('the CLI refuses served models without their tokenizer, and stray tokenizers', () => {
    expect(() => modelsFromFlags(['sglang:http://h:1'], [])).toThrow(/needs a --tokenizer DIR/);
    expect(() => modelsFromFlags(['./a', 'vllm:http://h:1'], ['t1', 't2'])).toThrow(/2 --tokenizer flags for 1 served models/);
    expect(() => modelsFromFlags(undefined, ['t'])).toThrow(/--tokenizer goes with a served model/);
    expect(() => modelsFromFlags(['sglang:ftp://h'], ['t'])).toThrow(/http\(s\) URL/);
    expect(modelsFromFlags(['vllm:https://h:8000/', './b'], ['tok'], 'key')).toEqual([{ engine: 'vllm', url: 'https://h:8000/', tokenizer: 'tok', apiKey: 'key' }, './b']);
  });
});
