/**
 * Concurrent calls on one model set are queued, never interleaved on a KV cache: 8 concurrent
 * invokes, `batch` with maxConcurrency, and two LangChain instances sharing the same models all
 * give exactly the sequential results.
 */
import { HumanMessage } from '@langchain/core/messages';
import { SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM, type CausalLM } from '../../src/index';
import { liveSessionCount } from '../../src/research';
import { MISTRAL_TOOLS_TEMPLATE } from '../../tools/fixtures/chatTemplates';
import { fixtureModel } from '../helpers/fixtures';

const MODELS = [fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 5, logitScale: 2 }), fixtureModel({ tokenizer: 'llama2', seed: 6, logitScale: 2, chatTemplate: MISTRAL_TOOLS_TEMPLATE })];
const QUESTIONS = ['Mia has 37 marbles.', 'Nora sells 5 apples.', 'Omar finds 12 coins.', 'Liam buys 3 pencils.', 'Priya uses 9 stickers.', 'Yusuf has 80 acorns.', 'Ingrid gets 7 more.', 'Kwame loses 2 buttons.'].map(
  (q) => `Q: ${q} What now?\nA:`,
);

/**
 * Counts how many forward passes ever ran at once on one model (a generation runs its members
 * concurrently; two generations must never share a model's cache).
 */
function guardOverlap(models: readonly CausalLM[]): { maxInFlight: number } {
  const state = { maxInFlight: 0 };
  for (const m of models) {
    let inFlight = 0;
    const forward = m.score.bind(m);
    m.score = async (...args) => {
      inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, inFlight);
      try {
        return await forward(...args);
      } finally {
        inFlight--;
      }
    };
  }
  return state;
}

describe('concurrency', () => {
  let ensemble: SafeEnsemble;
  let overlap: { maxInFlight: number };
  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: MODELS, maxNewTokens: 12 });
    overlap = guardOverlap(ensemble.models as CausalLM[]);
  });
  afterAll(() => ensemble.dispose());

  it('8 concurrent engine generations equal the sequential ones', async () => {
    const sequential: string[] = [];
    for (const q of QUESTIONS) sequential.push((await ensemble.generate(q, { rawPrompt: true })).text);
    const concurrent = await Promise.all(QUESTIONS.map((q) => ensemble.generate(q, { rawPrompt: true })));
    expect(concurrent.map((r) => r.text)).toEqual(sequential);
    expect(new Set(sequential).size).toBeGreaterThan(1); // the prompts really differ
    expect(overlap.maxInFlight).toBe(1);
  });

  it('8 concurrent SafeEnsembleLLM invokes and batch({ maxConcurrency: 3 }) equal the sequential results', async () => {
    const llm = new SafeEnsembleLLM({ ensemble, rawPrompt: true, maxNewTokens: 12 });
    const sequential: string[] = [];
    for (const q of QUESTIONS) sequential.push(await llm.invoke(q));
    expect(await Promise.all(QUESTIONS.map((q) => llm.invoke(q)))).toEqual(sequential);
    expect(await llm.batch(QUESTIONS, { maxConcurrency: 3 })).toEqual(sequential);
    expect(overlap.maxInFlight).toBe(1);
  });

  it('8 concurrent SafeEnsembleChatModel invokes and batch equal the sequential results', async () => {
    const chat = new SafeEnsembleChatModel({ ensemble, maxNewTokens: 12 });
    const inputs = QUESTIONS.map((q) => [new HumanMessage(q)]);
    const sequential: string[] = [];
    for (const m of inputs) sequential.push((await chat.invoke(m)).content as string);
    expect((await Promise.all(inputs.map((m) => chat.invoke(m)))).map((r) => r.content)).toEqual(sequential);
    expect((await chat.batch(inputs, { maxConcurrency: 3 })).map((r) => r.content)).toEqual(sequential);
    expect(overlap.maxInFlight).toBe(1);
  });

  it('two LangChain instances over the same model folders share one queue', async () => {
    const a = new SafeEnsembleLLM({ models: MODELS, rawPrompt: true, maxNewTokens: 12 });
    const b = new SafeEnsembleLLM({ models: MODELS, rawPrompt: true, maxNewTokens: 12, consensusThreshold: 0.9 });
    const before = liveSessionCount();
    const sequential: string[] = [];
    for (const q of QUESTIONS.slice(0, 4)) sequential.push(await a.invoke(q), await b.invoke(q));
    expect(liveSessionCount() - before).toBe(MODELS.length); // one loaded model set, hence one queue
    const concurrent = await Promise.all(QUESTIONS.slice(0, 4).flatMap((q) => [a.invoke(q), b.invoke(q)]));
    expect(concurrent).toEqual(sequential);
    await Promise.all([a.dispose(), b.dispose()]);
    expect(liveSessionCount()).toBe(before);
  });
});
