/**
 * Leaving a stream while a served model's request is in flight on a stalled server: by signal,
 * timeout, `break`, a throw in the consumer, `return()` while a `next()` is still pending, and
 * an iterator read once and dropped. Every way settles at once (the stalled request is cut, not
 * waited for until the request timeout), and the next call runs normally with the same text.
 */
import { loadModel, loadRemoteModel, SafeEnsemble, SafeEnsembleLLM } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { EngineServer } from '../../tools/fixtures/engineServer';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many marbles does she have now?\nA:';
/** Far beyond what any way of leaving may take; the request timeout is longer still. */
const STALL_MS = 8000;
const PROMPT_SETTLE_MS = 2500;

type Way = 'signal' | 'timeout' | 'break' | 'throw' | 'return-pending' | 'abandon';
const WAYS: Way[] = ['signal', 'timeout', 'break', 'throw', 'return-pending', 'abandon'];

/** Rejects when `promise` takes longer than `ms`, naming what hung. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)));
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

describe('leaving a stream while a served model stalls', () => {
  let server: EngineServer;
  let reference: string;
  const served = () => ({ engine: 'sglang' as const, url: server.url, tokenizer: MISTRAL, timeoutMs: 60_000, retries: 0 });
  beforeAll(async () => {
    server = await EngineServer.start({ engine: 'sglang', model: MISTRAL });
    const local = await SafeEnsemble.load({ models: [QWEN, MISTRAL] });
    reference = (await local.generate(PROMPT, { rawPrompt: true, maxNewTokens: 16 })).text;
    await local.dispose();
  });
  afterAll(() => server.close());
  afterEach(() => {
    server.fault = null;
  });

  /** Reads `stream` the given way; the server stalls once the first chunk has come. */
  async function leave(opened: AsyncIterable<unknown> | Promise<AsyncIterable<unknown>>, way: Way, controller: AbortController): Promise<string> {
    try {
      // LangChain's stream() resolves with the first chunk: a timeout may already fire there on a slow machine.
      const iterator = (await opened)[Symbol.asyncIterator]();
      await iterator.next();
      server.fault = { kind: 'stall', ms: STALL_MS };
      if (way === 'abandon') return 'abandoned';
      if (way === 'return-pending') {
        const pending = iterator.next().catch((e: unknown) => e);
        await new Promise((r) => setTimeout(r, 100)); // the stalled request is in flight
        await within(iterator.return!(undefined), PROMPT_SETTLE_MS, 'return() during a pending next()');
        await within(pending, PROMPT_SETTLE_MS, 'the pending next() after return()');
        return 'returned';
      }
      // Break and throw leave after a chunk while the generation's next request is in flight.
      if (way === 'break' || way === 'throw') {
        await new Promise((r) => setTimeout(r, 100));
        // What for-await does on both: return() (then, for a throw, the error propagates).
        await within(iterator.return!(undefined), PROMPT_SETTLE_MS, way);
        if (way === 'throw') throw new Error('consumer failed');
        return 'broke';
      }
      setTimeout(() => controller.abort(), 100);
      for (;;) {
        const step = await within(iterator.next(), PROMPT_SETTLE_MS + 1000, `next() left by ${way}`);
        if (step.done) return 'finished';
      }
    } catch (error) {
      return (error as Error).name === 'Error' ? (error as Error).message : (error as Error).name;
    }
  }

  it.each(WAYS)('SafeEnsembleLLM.stream() left by %s, then a normal call', async (way) => {
    const llm = new SafeEnsembleLLM({ models: [QWEN, served()], rawPrompt: true, maxNewTokens: way === 'abandon' ? 16 : 200 });
    const controller = new AbortController();
    try {
      await llm.invoke(PROMPT, { maxNewTokens: 1 }); // loads the models, so the timeout measures the generation
      const options = way === 'signal' ? { signal: controller.signal } : way === 'timeout' ? { timeout: 1500 } : {};
      const outcome = await within(leave(llm.stream(PROMPT, options), way, controller), 6000, `leaving by ${way}`);
      expect(outcome).toMatch({ signal: /Abort/, timeout: /Abort|Timeout/, break: /^broke$/, throw: /^consumer failed$/, 'return-pending': /^returned$/, abandon: /^abandoned$/ }[way]);
      server.fault = null;
      // An abandoned generation runs on to its own end (16 tokens) once its stalled request
      // answers; every other way cut the request, so the next call starts at once.
      const t0 = Date.now();
      expect(await within(llm.invoke(PROMPT, { maxNewTokens: 16 }), way === 'abandon' ? STALL_MS + 8000 : 5000, 'the next call')).toBe(reference);
      if (way !== 'abandon') expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      await llm.dispose();
    }
  });

  it.each(WAYS)('a JSON-constrained SafeEnsembleLLM.stream() left by %s, then constrained and normal calls', async (way) => {
    const schema = { type: 'object', properties: { reasoning: { type: 'string' }, answer: { type: 'number' } }, required: ['reasoning', 'answer'] };
    const llm = new SafeEnsembleLLM({ models: [served(), QWEN], rawPrompt: true, maxNewTokens: way === 'abandon' ? 16 : 200, responseFormat: schema });
    const controller = new AbortController();
    try {
      // The served model drafts: each of its tokens is drafted through the grammar, one request a token.
      const constrained = await llm.invoke(PROMPT, { maxNewTokens: 16 });
      expect(Object.keys(JSON.parse(constrained) as object)).toEqual(['reasoning', 'answer']);
      const options = way === 'signal' ? { signal: controller.signal } : way === 'timeout' ? { timeout: 1500 } : {};
      const outcome = await within(leave(llm.stream(PROMPT, options), way, controller), 6000, `leaving by ${way}`);
      expect(outcome).toMatch({ signal: /Abort/, timeout: /Abort|Timeout/, break: /^broke$/, throw: /^consumer failed$/, 'return-pending': /^returned$/, abandon: /^abandoned$/ }[way]);
      server.fault = null;
      const wait = way === 'abandon' ? STALL_MS + 8000 : 5000;
      // Nothing of the left call's grammar state survives: the same constrained text, then free text.
      expect(await within(llm.invoke(PROMPT, { maxNewTokens: 16 }), wait, 'the next constrained call')).toBe(constrained);
      const free = await within(llm.invoke(PROMPT, { maxNewTokens: 16, responseFormat: 'text' }), 5000, 'the next free call');
      const fresh = new SafeEnsembleLLM({ models: [served(), QWEN], rawPrompt: true, maxNewTokens: 16 });
      try {
        expect(free).toBe(await fresh.invoke(PROMPT));
      } finally {
        await fresh.dispose();
      }
    } finally {
      await llm.dispose();
    }
  });

  it.each(WAYS)('with look-ahead scoring (a served verifier scored by its top-k), SafeEnsembleLLM.stream() left by %s, then a normal call', async (way) => {
    const config = { models: [QWEN, served()], rawPrompt: true, unionScoring: 'look-ahead' as const, consensusThreshold: 0.9 };
    const llm = new SafeEnsembleLLM({ ...config, maxNewTokens: way === 'abandon' ? 16 : 200 });
    const controller = new AbortController();
    try {
      const expected = await llm.invoke(PROMPT, { maxNewTokens: 16 });
      const options = way === 'signal' ? { signal: controller.signal } : way === 'timeout' ? { timeout: 1500 } : {};
      const outcome = await within(leave(llm.stream(PROMPT, options), way, controller), 6000, `leaving by ${way}`);
      expect(outcome).toMatch({ signal: /Abort/, timeout: /Abort|Timeout/, break: /^broke$/, throw: /^consumer failed$/, 'return-pending': /^returned$/, abandon: /^abandoned$/ }[way]);
      server.fault = null;
      expect(await within(llm.invoke(PROMPT, { maxNewTokens: 16 }), way === 'abandon' ? STALL_MS + 8000 : 5000, 'the next call')).toBe(expected);
      // And the same as a fresh ensemble's: nothing of the left call's look-ahead state survived.
      const fresh = new SafeEnsembleLLM({ ...config, maxNewTokens: 16 });
      try {
        expect(await fresh.invoke(PROMPT)).toBe(expected);
      } finally {
        await fresh.dispose();
      }
    } finally {
      await llm.dispose();
    }
  });

  it.each(WAYS.filter((w) => w !== 'timeout'))('SafeEnsemble.stream() left by %s, then a normal call', async (way) => {
    const ensemble = new SafeEnsemble([await loadModel(QWEN), await loadRemoteModel(served())]);
    const controller = new AbortController();
    try {
      const stream = ensemble.stream(PROMPT, { rawPrompt: true, maxNewTokens: way === 'abandon' ? 16 : 200, signal: controller.signal });
      const outcome = await within(leave(stream, way, controller), 6000, `leaving by ${way}`);
      // The engine's stream ends an aborted generation with a result (finishReason 'abort').
      expect(outcome).toBe({ signal: 'finished', timeout: '', break: 'broke', throw: 'consumer failed', 'return-pending': 'returned', abandon: 'abandoned' }[way]);
      server.fault = null;
      const r = await within(ensemble.generate(PROMPT, { rawPrompt: true, maxNewTokens: 16 }), way === 'abandon' ? STALL_MS + 8000 : 5000, 'the next call');
      expect(r.text).toBe(reference);
    } finally {
      await ensemble.dispose();
    }
  });
});
