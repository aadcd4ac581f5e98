import { basename } from 'node:path';
import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import { load } from '@langchain/core/load';
import { StringOutputParser } from '@langchain/core/output_parsers';
import { PromptTemplate } from '@langchain/core/prompts';
import * as lib from '../../src/index';
import { SafeEnsembleLLM, type EnsembleStats } from '../../src/index';
import { liveSessionCount } from '../../src/research';
import { chatPair, COLOR_ANSWER, COLOR_PROMPT, QA_ANSWER, QA_PROMPT } from '../helpers/chatFixtures';

/** Collects handleLLMNewToken pieces. */
class TokenCollector extends BaseCallbackHandler {
  name = 'collector';
  tokens: string[] = [];
  async handleLLMNewToken(token: string) {
    this.tokens.push(token);
  }
}

async function statsOf(llm: SafeEnsembleLLM, prompt: string, options: Record<string, unknown> = {}): Promise<{ text: string; stats: EnsembleStats }> {
  const result = await llm.generate([prompt], options as never);
  const gens = result.generations[0]!;
  return { text: gens.map((g) => g.text).join(''), stats: gens[gens.length - 1]!.generationInfo!.ensemble as EnsembleStats };
}

describe('SafeEnsembleLLM', () => {
  let models: [string, string];
  let llm: SafeEnsembleLLM;
  beforeAll(async () => {
    models = await chatPair();
    llm = new SafeEnsembleLLM({ models, maxNewTokens: 64 });
  });
  afterAll(() => llm.dispose());

  it('runs in an LCEL chain: invoke, batch and stream', async () => {
    const chain = PromptTemplate.fromTemplate('Q: {question}\nA:').pipe(llm).pipe(new StringOutputParser());
    expect(await chain.invoke({ question: 'What is 2 + 3?' })).toBe(QA_ANSWER);
    expect(await chain.batch([{ question: 'What is 2 + 3?' }, { question: 'Name a color.' }])).toEqual([QA_ANSWER, COLOR_ANSWER]);
    const pieces: string[] = [];
    for await (const piece of await chain.stream({ question: 'Name a color.' })) pieces.push(piece);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe(COLOR_ANSWER);
  });

  it('streamEvents v2: start, stream…, end, and the output is the concatenated chunks; callbacks get the same pieces', async () => {
    const events: string[] = [];
    const streamed: string[] = [];
    let output: unknown;
    for await (const event of llm.streamEvents(QA_PROMPT, { version: 'v2' })) {
      events.push(event.event);
      if (event.event === 'on_llm_stream') streamed.push((event.data.chunk as { text: string }).text);
      if (event.event === 'on_llm_end') output = event.data.output;
    }
    expect(events[0]).toBe('on_llm_start');
    expect(events[events.length - 1]).toBe('on_llm_end');
    expect(events.slice(1, -1).every((e) => e === 'on_llm_stream')).toBe(true);
    expect(streamed.join('')).toBe(QA_ANSWER);
    expect(JSON.stringify(output)).toContain(JSON.stringify(QA_ANSWER).slice(1, -1));
    // Callbacks fire per committed piece on both paths.
    const onStream = new TokenCollector();
    await llm.invoke(QA_PROMPT, { callbacks: [onStream] });
    expect(onStream.tokens.join('')).toBe(QA_ANSWER);
    const viaCall = new TokenCollector();
    await llm.generate([QA_PROMPT], { callbacks: [viaCall] });
    expect(viaCall.tokens.join('')).toBe(QA_ANSWER);
  });

  it('streaming and non-streaming give identical text', async () => {
    const invoked = await llm.invoke(COLOR_PROMPT);
    let streamed = '';
    for await (const piece of await llm.stream(COLOR_PROMPT)) streamed += piece;
    expect(streamed).toBe(invoked);
  });

  it('takes SAFE knobs through the constructor, call options, withConfig and configurable (call options win)', async () => {
    const short = new SafeEnsembleLLM({ models, maxNewTokens: 3 });
    expect((await statsOf(short, QA_PROMPT)).stats.generatedTokens).toBe(3); // constructor
    expect((await statsOf(llm, QA_PROMPT, { maxNewTokens: 4 })).stats.generatedTokens).toBe(4); // call option
    const bound = llm.withConfig({ draftLength: 2, strategy: 'safe' });
    const viaBinding = await bound.invoke(QA_PROMPT);
    expect(viaBinding).toBe(QA_ANSWER);
    expect((await statsOf(llm, QA_PROMPT, { draftLength: 2 })).stats.cycles).toBeGreaterThan((await statsOf(llm, QA_PROMPT)).stats.cycles);
    const viaConfigurable = await llm.invoke(QA_PROMPT, { configurable: { safeEnsemble: { maxNewTokens: 2 } } } as never);
    expect(viaConfigurable.length).toBeLessThan(QA_ANSWER.length);
    // An explicit call option beats configurable.
    const both = await llm.invoke(QA_PROMPT, { maxNewTokens: 64, configurable: { safeEnsemble: { maxNewTokens: 2 } } } as never);
    expect(both).toBe(QA_ANSWER);
    // The drafter alone (consensusThreshold 0) is what the models write here, and no ensemble runs.
    const { stats } = await statsOf(llm, QA_PROMPT, { consensusThreshold: 0 });
    expect(stats.ensembledTokens).toBe(0);
    expect((await statsOf(llm, QA_PROMPT, { strategy: 'single' })).stats.forwardPasses[1]).toBe(0);
    await short.dispose();
  });

  it('rejects an out-of-range knob on every channel, naming it, before any model runs', async () => {
    expect(() => new SafeEnsembleLLM({ models, consensusThreshold: 2 })).toThrow(/consensusThreshold: must be a number from 0 to 1/);
    await expect(llm.invoke(QA_PROMPT, { draftLength: 0 })).rejects.toThrow(/draftLength: must be an integer/);
    await expect(llm.withConfig({ topK: -1 }).invoke(QA_PROMPT)).rejects.toThrow(/topK: must be an integer/);
    await expect(llm.invoke(QA_PROMPT, { configurable: { safeEnsemble: { sharpening: { method: 'max' } } } } as never)).rejects.toThrow(/sharpening.method/);
    expect(() => new SafeEnsembleLLM({ models: [] })).toThrow(/models: pass model folders/);
  });

  it('honours stop sequences from the call and the constructor', async () => {
    expect(await llm.invoke(QA_PROMPT, { stop: ['= 5'] })).toBe(' 2 + 3 ');
    const stopping = new SafeEnsembleLLM({ models, stop: ['The answer'] });
    expect(await stopping.invoke(QA_PROMPT)).toBe(' 2 + 3 = 5. ');
    let streamed = '';
    for await (const piece of await stopping.stream(QA_PROMPT)) streamed += piece;
    expect(streamed).toBe(' 2 + 3 = 5. ');
    await stopping.dispose();
  });

  it('aborts: an aborted signal rejects invoke and stream; a timeout stops a running generation', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(llm.invoke(QA_PROMPT, { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    await expect(
      (async () => {
        const got: string[] = [];
        for await (const piece of await llm.stream(QA_PROMPT, { signal: controller.signal })) got.push(piece);
        return got;
      })(),
    ).rejects.toThrow(/abort/i); // LangChain itself refuses to start a stream on an aborted signal
    const mid = new AbortController();
    const pieces: string[] = [];
    const running = (async () => {
      for await (const piece of await llm.stream(QA_PROMPT, { signal: mid.signal })) {
        pieces.push(piece);
        mid.abort();
      }
    })();
    await expect(running).rejects.toThrow(/abort/i);
    expect(pieces).toHaveLength(1); // nothing more after the abort
    await expect(llm.invoke(QA_PROMPT, { timeout: 1, maxNewTokens: 64 })).rejects.toMatchObject({ name: 'AbortError' });
    expect(await llm.invoke(QA_PROMPT)).toBe(QA_ANSWER); // and it is still usable
    const limited = new SafeEnsembleLLM({ models, timeout: 1, maxNewTokens: 64 });
    await expect(limited.invoke(QA_PROMPT)).rejects.toMatchObject({ name: 'AbortError' });
    await limited.dispose();
  });

  it('queues concurrent calls on one instance instead of interleaving them', async () => {
    const sequential = [await llm.invoke(QA_PROMPT), await llm.invoke(COLOR_PROMPT)];
    const concurrent = await Promise.all([llm.invoke(QA_PROMPT), llm.invoke(COLOR_PROMPT), llm.invoke(QA_PROMPT), llm.invoke(COLOR_PROMPT)]);
    expect(concurrent).toEqual([...sequential, ...sequential]);
  });

  it('serializes and loads back without reloading the models', async () => {
    await llm.invoke(QA_PROMPT);
    const sessions = liveSessionCount();
    const json = JSON.stringify(llm);
    expect(JSON.parse(json).id).toEqual(['safe_ensemble', 'llms', 'SafeEnsembleLLM']);
    const revived = await load<SafeEnsembleLLM>(json, { optionalImportsMap: { 'safe_ensemble/llms': lib } });
    expect(revived).toBeInstanceOf(SafeEnsembleLLM);
    expect(await revived.invoke(QA_PROMPT)).toBe(QA_ANSWER);
    expect(liveSessionCount()).toBe(sessions);
    await revived.dispose();
    expect(liveSessionCount()).toBe(sessions); // still used by `llm`
  });

  it('can wrap an already loaded SafeEnsemble (which then is not serializable)', async () => {
    const ensemble = await lib.SafeEnsemble.load({ models });
    const wrapped = new SafeEnsembleLLM({ ensemble });
    expect(await wrapped.invoke(QA_PROMPT)).toBe(QA_ANSWER);
    expect(wrapped.lc_serializable).toBe(false);
    expect(JSON.stringify(wrapped)).toContain('not_implemented');
    await wrapped.dispose(); // disposes the wrapped ensemble
    await expect(ensemble.generate(QA_PROMPT)).rejects.toThrow(/used after dispose/);
  });

  it('has LangChain conventions: maxRetries 0, _llmType, identifying params, constructor aliases', () => {
    expect((llm.caller as unknown as { maxRetries: number }).maxRetries).toBe(0);
    expect(llm._llmType()).toBe('safe_ensemble');
    // Model names (folder names), never the folders' paths.
    expect(llm._identifyingParams()).toMatchObject({ models: models.map((m) => basename(m)), maxNewTokens: 64, rawPrompt: true });
    const tolerant = new SafeEnsembleLLM({ models, temperature: 0, maxTokens: 10, timeout: 1000, stopSequences: ['\n\n'], maxRetries: 2 });
    expect(tolerant.invocationParams()).toMatchObject({ maxNewTokens: 10, stop: ['\n\n'] });
    expect(new SafeEnsembleLLM({ models, temperature: 0.7, topP: 0.9 }).invocationParams()).toMatchObject({ temperature: 0.7, topP: 0.9, topK: 0 });
    void tolerant.dispose();
  });
});
