/**
 * Sampling through LangChain: temperature, topP, topK and seed from every channel (constructor,
 * call options, withConfig, configurable), seeds reproducing across runs and across both
 * classes, streaming equal to invoke, and response metadata carrying the seed.
 */
import { HumanMessage } from '@langchain/core/messages';
import { bundledModels, SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM } from '../../src/index';
import { problemSet } from '../../src/research';

describe('sampling through the LangChain classes (bundled demo models)', () => {
  const models = bundledModels();
  const question = problemSet(2)[1]!.question;
  let llm: SafeEnsembleLLM;
  let chat: SafeEnsembleChatModel;
  let ensemble: SafeEnsemble;
  const knobs = { temperature: 0.8, topP: 0.95, maxNewTokens: 48 };
  beforeAll(async () => {
    // The LLM renders its string through the chat template (rawPrompt false), as the chat model
    // renders one human message: both send the models the same prompt.
    llm = new SafeEnsembleLLM({ models, rawPrompt: false, ...knobs });
    chat = new SafeEnsembleChatModel({ models, ...knobs });
    ensemble = await SafeEnsemble.load({ models });
  });
  afterAll(async () => {
    await llm.dispose();
    await chat.dispose();
    await ensemble.dispose();
  });

  it('one seed gives one text: SafeEnsemble, the LLM and the chat model agree, call after call', async () => {
    const direct = (await ensemble.generate(question, { ...knobs, seed: 7 })).text;
    expect(await llm.invoke(question, { seed: 7 } as never)).toBe(direct);
    expect(await llm.invoke(question, { seed: 7 } as never)).toBe(direct);
    expect((await chat.invoke([new HumanMessage(question)], { seed: 7 } as never)).content).toBe(direct);
    const texts = new Set<string>();
    for (let seed = 1; seed <= 5; seed++) texts.add(await llm.invoke(question, { seed } as never));
    expect(texts.size).toBeGreaterThan(1);
  });

  it('the seed comes from the constructor, withConfig and configurable alike; the metadata reports it', async () => {
    const direct = (await ensemble.generate(question, { ...knobs, seed: 11 })).text;
    const seeded = new SafeEnsembleChatModel({ models, ...knobs, seed: 11 });
    try {
      const reply = await seeded.invoke([new HumanMessage(question)]);
      expect(reply.content).toBe(direct);
      expect((reply.response_metadata.ensemble as { sampling: { seed: number } }).sampling.seed).toBe(11);
      expect((await chat.withConfig({ seed: 11 } as never).invoke([new HumanMessage(question)])).content).toBe(direct);
      expect((await chat.invoke([new HumanMessage(question)], { configurable: { safeEnsemble: { seed: 11 } } })).content).toBe(direct);
    } finally {
      await seeded.dispose();
    }
  });

  it('stream() gives the invoke() text for the same seed; batch() seeds every input alike', async () => {
    const direct = await llm.invoke(question, { seed: 3 } as never);
    let streamed = '';
    for await (const chunk of await llm.stream(question, { seed: 3 } as never)) streamed += chunk;
    expect(streamed).toBe(direct);
    const [a, b] = await llm.batch([question, question], { seed: 3 } as never);
    expect([a, b]).toEqual([direct, direct]);
  });

  it('a bad sampling knob fails the call with the field named', async () => {
    await expect(chat.invoke([new HumanMessage(question)], { topP: 0 } as never)).rejects.toThrow(/topP: must be a number above 0 up to 1/);
    expect(() => new SafeEnsembleLLM({ models, seed: -3 })).toThrow(/seed: must be an integer/);
  });
});
