/**
 * 200+ generations aborted at random points — by a signal fired during a forward pass, and by
 * timeouts — through the engine and both LangChain classes. Each must stop without starting
 * another forward pass, report the abort, and leave the instance answering exactly like a fresh
 * one.
 */
import { HumanMessage } from '@langchain/core/messages';
import { SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM, type CausalLM } from '../../src/index';
import { seededRandom } from '../../src/demo/random';
import { MISTRAL_TOOLS_TEMPLATE } from '../../tools/fixtures/chatTemplates';
import { fixtureModel } from '../helpers/fixtures';
import { wrapPasses } from '../helpers/passes';

// Two small-vocabulary models keep 400+ generations fast; cross-tokenizer runs are covered elsewhere.
const MODELS = [7, 6].map((seed) => fixtureModel({ tokenizer: 'llama2', seed, logitScale: 2, chatTemplate: MISTRAL_TOOLS_TEMPLATE }));
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many does she have?\nA:';
const FOLLOW_UP = 'Q: Nora has 12 apples. She sells 5. How many are left?\nA:';
const SHORT = 16;
const PER_VARIANT = 34; // 6 variants: 204 aborted generations

/** Counts forward passes and records how many had started when the signal fired. */
class PassCounter {
  started = 0;
  atAbort = -1;
  /** Fire `abort` inside pass number `at` (1-based), as a user's click during a pass would. */
  abortAt: { at: number; abort: () => void } | null = null;

  constructor(models: readonly CausalLM[]) {
    for (const m of models) {
      wrapPasses(m, (forward) => async (...args) => {
        this.started++;
        const result = forward(...args);
        if (this.abortAt && this.started === this.abortAt.at) this.abortAt.abort();
        return result;
      });
    }
  }

  watch(signal: AbortSignal): void {
    this.atAbort = -1;
    const record = () => (this.atAbort = this.started);
    if (signal.aborted) record();
    else signal.addEventListener('abort', record, { once: true });
  }
}

type Variant = 'engine-signal' | 'engine-timeout' | 'llm-signal' | 'llm-timeout' | 'chat-signal' | 'chat-timeout';

describe('random aborts', () => {
  let ensemble: SafeEnsemble;
  let counter: PassCounter;
  let llm: SafeEnsembleLLM;
  let chat: SafeEnsembleChatModel;
  let fresh: { engine: string; llm: string; chat: string };
  let passesOfFullRun: { raw: number; chat: number };
  const rand = seededRandom(2026);
  const tally = { aborted: 0, passesAfterAbort: 0 };

  beforeAll(async () => {
    // References from a separate, fresh instance.
    const reference = await SafeEnsemble.load({ models: MODELS });
    const passes = (r: { stats: { forwardPasses: number[] } }) => r.stats.forwardPasses.reduce((a, b) => a + b, 0);
    passesOfFullRun = {
      raw: passes(await reference.generate(PROMPT, { rawPrompt: true, maxNewTokens: SHORT })),
      chat: passes(await reference.generate([{ role: 'user', content: PROMPT }], { maxNewTokens: SHORT })),
    };
    fresh = {
      engine: (await reference.generate(FOLLOW_UP, { rawPrompt: true, maxNewTokens: SHORT })).text,
      llm: (await reference.generate(FOLLOW_UP, { rawPrompt: true, maxNewTokens: SHORT })).text,
      chat: (await reference.generate([{ role: 'user', content: FOLLOW_UP }], { maxNewTokens: SHORT })).text,
    };
    await reference.dispose();
    ensemble = await SafeEnsemble.load({ models: MODELS });
    counter = new PassCounter(ensemble.models as CausalLM[]);
    // Every call (engine or LangChain) reaches the engine's stream(): watch the signal it gets.
    const stream = ensemble.stream.bind(ensemble);
    ensemble.stream = (input, options) => {
      if (options?.signal) counter.watch(options.signal);
      return stream(input, options);
    };
    llm = new SafeEnsembleLLM({ ensemble, rawPrompt: true, maxNewTokens: SHORT });
    chat = new SafeEnsembleChatModel({ ensemble, maxNewTokens: SHORT });
  });
  afterAll(async () => {
    await ensemble.dispose();
    // The figure the README's reliability section quotes.
    console.log(`aborts: ${tally.aborted} generations aborted, ${tally.passesAfterAbort} forward passes started after an abort`);
  });

  /** Runs one aborted call; returns what the caller saw. */
  async function abortedCall(variant: Variant): Promise<string> {
    const timeout = variant.endsWith('timeout');
    const controller = new AbortController();
    const ms = 1 + Math.floor(rand() * 25);
    // Timeouts need generations long enough to outlive them.
    const maxNewTokens = timeout ? 2000 : SHORT;
    if (!timeout) counter.abortAt = { at: counter.started + 1 + Math.floor(rand() * passesOfFullRun[variant.startsWith('chat') ? 'chat' : 'raw']), abort: () => controller.abort() };
    // LangChain turns `timeout` into a signal of its own: the engine's signal is the one to watch.
    const options = timeout ? { timeout: ms, maxNewTokens } : { signal: controller.signal, maxNewTokens };
    try {
      if (variant === 'engine-signal') return (await ensemble.generate(PROMPT, { rawPrompt: true, maxNewTokens, signal: controller.signal })).finishReason;
      if (variant === 'engine-timeout') return (await ensemble.generate(PROMPT, { rawPrompt: true, maxNewTokens, signal: AbortSignal.timeout(ms) })).finishReason;
      if (variant.startsWith('llm')) await llm.invoke(PROMPT, options);
      else await chat.invoke([new HumanMessage(PROMPT)], options);
      return 'completed';
    } catch (e) {
      return (e as Error).name;
    } finally {
      counter.abortAt = null;
    }
  }

  it.each(['engine-signal', 'engine-timeout', 'llm-signal', 'llm-timeout', 'chat-signal', 'chat-timeout'] as Variant[])(
    '%s: stops within one forward pass and the next call equals a fresh instance',
    async (variant) => {
      for (let i = 0; i < PER_VARIANT; i++) {
        counter.atAbort = -1;
        const finish = await abortedCall(variant);
        expect(finish).toBe(variant.startsWith('engine') ? 'abort' : 'AbortError');
        // Nothing new started after the signal fired (the pass in flight may finish).
        expect(counter.atAbort).toBeGreaterThanOrEqual(0);
        tally.passesAfterAbort += counter.started - counter.atAbort;
        expect(counter.started - counter.atAbort).toBe(0);
        tally.aborted++;
        if (variant.startsWith('engine')) expect((await ensemble.generate(FOLLOW_UP, { rawPrompt: true, maxNewTokens: SHORT })).text).toBe(fresh.engine);
        else if (variant.startsWith('llm')) expect(await llm.invoke(FOLLOW_UP)).toBe(fresh.llm);
        else expect((await chat.invoke([new HumanMessage(FOLLOW_UP)])).content).toBe(fresh.chat);
      }
    },
  );
});
