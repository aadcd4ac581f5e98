/**
 * Every way a consumer can leave a stream — finish, abort by signal, timeout, `break`, a throw
 * in the consumer, `return()`, an iterator read once and dropped — must leave the models free:
 * later calls on the same instance and on other instances sharing the model folders settle
 * and equal a fresh instance, dispose() settles, and no session stays open.
 */
import { HumanMessage } from '@langchain/core/messages';
import { DisposedError, SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM } from '../../src/index';
import { liveSessionCount } from '../../src/research';
import { MISTRAL_TOOLS_TEMPLATE } from '../../tools/fixtures/chatTemplates';
import { fixtureModel } from '../helpers/fixtures';
import { wrapPasses } from '../helpers/passes';

const MODELS = [11, 12].map((seed) => fixtureModel({ tokenizer: 'llama2', seed, logitScale: 2, chatTemplate: MISTRAL_TOOLS_TEMPLATE }));
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many does she have?\nA:';
const FOLLOW_UP = 'Q: Nora has 12 apples. She sells 5. How many are left?\nA:';
const LONG = 400;
const SHORT = 12;

/** Rejects instead of hanging, so a deadlock fails the test with a message. */
function settles<T>(promise: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms (deadlock)`)), ms)));
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

type Leave = 'signal' | 'timeout' | 'break' | 'throw' | 'return' | 'abandon';

/** What the consumer saw: an abort error for signal and timeout, its own error for throw. */
function expectOutcome(how: Leave, outcome: string): void {
  if (how === 'signal' || how === 'timeout') expect(outcome).toMatch(/Abort|Timeout/);
  else if (how === 'throw') expect(outcome).toBe('Error: consumer failed');
  else expect(outcome).toBe(how === 'abandon' ? 'abandoned' : 'finished');
}

describe('leaving a stream frees the models', () => {
  let fresh: { raw: string; chat: string };
  const sessionsBefore = liveSessionCount();

  beforeAll(async () => {
    const reference = await SafeEnsemble.load({ models: MODELS });
    fresh = {
      raw: (await reference.generate(FOLLOW_UP, { rawPrompt: true, maxNewTokens: SHORT })).text,
      chat: (await reference.generate([{ role: 'user', content: FOLLOW_UP }], { maxNewTokens: SHORT })).text,
    };
    await reference.dispose();
  });

  afterAll(() => {
    expect(liveSessionCount()).toBe(sessionsBefore);
  });

  /** Reads a LangChain stream, leaving it the given way after the first chunk. */
  async function leaveLangChainStream(open: () => Promise<AsyncIterable<unknown>>, how: Leave, controller: AbortController): Promise<string> {
    try {
      const iterator = (await open())[Symbol.asyncIterator]();
      if (how === 'abandon') {
        await iterator.next();
        return 'abandoned';
      }
      for await (const _chunk of { [Symbol.asyncIterator]: () => iterator }) {
        void _chunk;
        if (how === 'signal') controller.abort();
        if (how === 'break') break;
        if (how === 'throw') throw new Error('consumer failed');
        if (how === 'return') {
          await iterator.return?.();
          break;
        }
      }
      return 'finished';
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
  }

  it.each(['signal', 'timeout', 'break', 'throw', 'return', 'abandon'] as Leave[])('SafeEnsembleLLM .stream(), left by %s', async (how) => {
    const llm = new SafeEnsembleLLM({ models: MODELS, rawPrompt: true, maxNewTokens: LONG });
    const other = new SafeEnsembleLLM({ models: MODELS, rawPrompt: true, maxNewTokens: SHORT }); // shares the same loaded models
    const controller = new AbortController();
    const options = how === 'timeout' ? { timeout: 15 } : how === 'signal' ? { signal: controller.signal } : {};
    const outcome = await leaveLangChainStream(() => llm.stream(PROMPT, options), how, controller);
    expectOutcome(how, outcome);
    expect(await settles(llm.invoke(FOLLOW_UP, { maxNewTokens: SHORT }), 'the next invoke')).toBe(fresh.raw);
    expect(await settles(other.invoke(FOLLOW_UP), 'an invoke on another instance sharing the models')).toBe(fresh.raw);
    await settles(llm.dispose(), 'dispose()');
    await settles(other.dispose(), 'dispose() of the other instance');
    expect(liveSessionCount()).toBe(sessionsBefore);
  });

  it.each(['signal', 'timeout', 'break', 'throw', 'return', 'abandon'] as Leave[])('SafeEnsembleChatModel .stream(), left by %s', async (how) => {
    const chat = new SafeEnsembleChatModel({ models: MODELS, maxNewTokens: LONG });
    const other = new SafeEnsembleChatModel({ models: MODELS, maxNewTokens: SHORT });
    const controller = new AbortController();
    const options = how === 'timeout' ? { timeout: 15 } : how === 'signal' ? { signal: controller.signal } : {};
    const outcome = await leaveLangChainStream(() => chat.stream([new HumanMessage(PROMPT)], options), how, controller);
    expectOutcome(how, outcome);
    expect((await settles(chat.invoke([new HumanMessage(FOLLOW_UP)], { maxNewTokens: SHORT }), 'the next invoke')).content).toBe(fresh.chat);
    expect((await settles(other.invoke([new HumanMessage(FOLLOW_UP)]), 'an invoke on another instance')).content).toBe(fresh.chat);
    await settles(chat.dispose(), 'dispose()');
    await settles(other.dispose(), 'dispose() of the other instance');
    expect(liveSessionCount()).toBe(sessionsBefore);
  });

  describe('engine stream()', () => {
    let ensemble: SafeEnsemble;
    let passes = 0;
    beforeAll(async () => {
      ensemble = await SafeEnsemble.load({ models: MODELS });
      for (const m of ensemble.models) {
        wrapPasses(m, (forward) => (...args) => {
          passes++;
          return forward(...args);
        });
      }
    });
    afterAll(async () => {
      await settles(ensemble.dispose(), 'dispose()');
    });

    const followUp = () => settles(ensemble.generate(FOLLOW_UP, { rawPrompt: true, maxNewTokens: SHORT }), 'the next generate()');

    it.each(['break', 'throw', 'return'] as Leave[])('left by %s: the generation stops at the next pass', async (how) => {
      const before = passes;
      if (how !== 'return') try {
        for await (const chunk of ensemble.stream(PROMPT, { rawPrompt: true, maxNewTokens: LONG })) {
          if (chunk.type !== 'text') continue;
          if (how === 'break') break;
          if (how === 'throw') throw new Error('consumer failed');
        }
      } catch (e) {
        expect((e as Error).message).toBe('consumer failed');
      }
      if (how === 'return') {
        const it = ensemble.stream(PROMPT, { rawPrompt: true, maxNewTokens: LONG });
        await it.next();
        await it.return(undefined);
      }
      const afterLeaving = passes;
      expect((await followUp()).text).toBe(fresh.raw);
      // The left generation ran at most one more pass (the one in flight) before the follow-up's.
      const followUpPasses = passes - afterLeaving;
      expect(afterLeaving - before).toBeLessThan(LONG / 4);
      expect(followUpPasses).toBeGreaterThan(0);
    });

    it('left by abort signal: the result says abort and the next call is fresh', async () => {
      const controller = new AbortController();
      let finish = '';
      for await (const chunk of ensemble.stream(PROMPT, { rawPrompt: true, maxNewTokens: LONG, signal: controller.signal })) {
        if (chunk.type === 'text') controller.abort();
        else finish = chunk.result.finishReason;
      }
      expect(finish).toBe('abort');
      expect((await followUp()).text).toBe(fresh.raw);
    });

    it('read once and abandoned: later generate() calls still run', async () => {
      const dropped = ensemble.stream(PROMPT, { rawPrompt: true, maxNewTokens: 60 });
      expect((await dropped.next()).done).toBe(false);
      // Never read again, never returned.
      expect((await followUp()).text).toBe(fresh.raw);
      expect((await followUp()).text).toBe(fresh.raw);
    });

    it('an iterator never started takes no lock', async () => {
      ensemble.stream(PROMPT, { rawPrompt: true, maxNewTokens: LONG });
      expect((await followUp()).text).toBe(fresh.raw);
    });

    it('a queued call aborted before its turn runs no forward pass', async () => {
      const first = ensemble.stream(PROMPT, { rawPrompt: true, maxNewTokens: 30 });
      await first.next();
      const controller = new AbortController();
      const second = ensemble.generate(PROMPT, { rawPrompt: true, maxNewTokens: 30, signal: controller.signal }); // queued behind the first
      controller.abort();
      await first.return(undefined);
      const before = passes;
      expect((await second).finishReason).toBe('abort');
      expect(passes - before).toBe(0);
      expect((await followUp()).text).toBe(fresh.raw);
    });
  });

  it('dispose() while a generation runs stops it with DisposedError and frees every session', async () => {
    const ensemble = await SafeEnsemble.load({ models: MODELS });
    const running = ensemble.generate(PROMPT, { rawPrompt: true, maxNewTokens: LONG });
    const queued = ensemble.generate(FOLLOW_UP, { rawPrompt: true, maxNewTokens: SHORT });
    // Both calls may fail while dispose() is awaited: watch them from the start.
    const outcomes = Promise.allSettled([running, queued]);
    await new Promise((r) => setTimeout(r, 20));
    await settles(ensemble.dispose(), 'dispose() during a generation');
    for (const outcome of await outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(DisposedError);
    }
    expect(liveSessionCount()).toBe(sessionsBefore);
  });
});
