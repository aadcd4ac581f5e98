/**
 * Many generations at once: calls on one ensemble run concurrently (each with its own sequence
 * per member; local members batch the passes that wait together), and every request gets
 * exactly the text it gets alone — across strategies, seeded sampling, JSON output and aborts
 * at random points. LangChain's batch({ maxConcurrency }) and concurrent invokes overlap for
 * real (measured, not timed); maxConcurrentGenerations bounds them, first come first served;
 * nothing leaks.
 */
import { HumanMessage } from '@langchain/core/messages';
import { SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM, type EnsembleMember, type EnsembleOptions } from '../../src/index';
import { liveSessionCount, liveWorkerCount } from '../../src/research';
import { bundledModels } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';
import { seededRandom } from '../../src/demo/random';
import { wrapPasses } from '../helpers/passes';

const QUESTIONS = problemSet(16).map((p) => p.question);

/** Generations holding sequences at once, and passes in flight at once on one member (peaks). */
function watchOverlap(models: readonly EnsembleMember[]): { generations: number; passes: number; open: number } {
  const state = { generations: 0, passes: 0, open: 0 };
  for (const m of models) {
    let inFlight = 0;
    let open = 0;
    wrapPasses(m, (score) => async (...args) => {
      inFlight++;
      state.passes = Math.max(state.passes, inFlight);
      try {
        return await score(...args);
      } finally {
        inFlight--;
      }
    });
    const openSequence = m.openSequence!.bind(m);
    m.openSequence = () => {
      const sequence = openSequence();
      const close = sequence.close.bind(sequence);
      open++;
      state.open = open;
      if (m === models[0]) state.generations = Math.max(state.generations, open);
      sequence.close = () => {
        close();
        open--;
        state.open = open;
      };
      return sequence;
    };
  }
  return state;
}

/** The options of request `i`: a mix of strategies, seeded sampling and JSON output. */
function optionsOf(i: number): EnsembleOptions {
  const maxNewTokens = 24;
  switch (i % 8) {
    case 0: return { maxNewTokens };
    case 1: return { maxNewTokens, strategy: 'every-token' };
    case 2: return { maxNewTokens, temperature: 0.8, seed: 100 + i };
    case 3: return { maxNewTokens, strategy: 'gac-threshold' };
    case 4: return { maxNewTokens: 40, responseFormat: { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'] } };
    case 5: return { maxNewTokens, strategy: 'single' };
    case 6: return { maxNewTokens, temperature: 1, topK: 20, seed: 7 * i, consensusThreshold: 0.8 };
    default: return { maxNewTokens, draftLength: 3 };
  }
}

describe('many generations at once', () => {
  let ensemble: SafeEnsemble;
  let overlap: ReturnType<typeof watchOverlap>;
  const sessionsBefore = liveSessionCount();
  const workersBefore = liveWorkerCount();
  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: bundledModels(), maxConcurrentGenerations: 16 });
    overlap = watchOverlap(ensemble.models);
  });
  afterAll(async () => {
    await ensemble.dispose();
    expect(liveSessionCount()).toBe(sessionsBefore);
    expect(liveWorkerCount()).toBe(workersBefore);
  });

  it('16 concurrent generations (mixed strategies, seeded sampling, JSON, random aborts) each give the text they give alone', async () => {
    const alone: string[] = [];
    for (let i = 0; i < QUESTIONS.length; i++) alone.push((await ensemble.generate(QUESTIONS[i]!, optionsOf(i))).text);
    expect(new Set(alone).size).toBeGreaterThan(8); // the requests really differ
    overlap.generations = 0;
    overlap.passes = 0;
    const random = seededRandom(26);
    const results = await Promise.all(
      QUESTIONS.map(async (q, i) => {
        const options = optionsOf(i);
        // Every fourth request is aborted after a random number of its chunks.
        const abortAfter = i % 4 === 3 ? 1 + Math.floor(random() * 4) : -1;
        const controller = new AbortController();
        let text = '';
        let finish = '';
        let chunks = 0;
        for await (const chunk of ensemble.stream(q, { ...options, signal: controller.signal })) {
          if (chunk.type === 'text') {
            text += chunk.text;
            if (++chunks === abortAfter) controller.abort();
          } else finish = chunk.result.finishReason;
        }
        return { text, finish, aborted: abortAfter > 0 && finish === 'abort' };
      }),
    );
    results.forEach((r, i) => {
      if (r.aborted) expect(alone[i]!.startsWith(r.text)).toBe(true);
      else expect(r.text).toBe(alone[i]);
    });
    expect(results.filter((r) => r.aborted).length).toBeGreaterThan(0);
    // They ran together: generations held sequences at once, and passes were in flight together.
    expect(overlap.generations).toBeGreaterThanOrEqual(8);
    expect(overlap.passes).toBeGreaterThan(1);
    expect(overlap.open).toBe(0); // every generation closed its sequences
  });

  it('LangChain batch({ maxConcurrency: 4 }) and concurrent invokes overlap, with the texts they give alone', async () => {
    const llm = new SafeEnsembleLLM({ ensemble, maxNewTokens: 16 });
    const chat = new SafeEnsembleChatModel({ ensemble, maxNewTokens: 16 });
    const inputs = QUESTIONS.slice(0, 8);
    const alone: string[] = [];
    for (const q of inputs) alone.push(await llm.invoke(q));
    overlap.generations = 0;
    expect(await llm.batch(inputs, { maxConcurrency: 4 })).toEqual(alone);
    expect(overlap.generations).toBe(4);
    const chatAlone: string[] = [];
    for (const q of inputs.slice(0, 4)) chatAlone.push((await chat.invoke([new HumanMessage(q)])).content as string);
    overlap.generations = 0;
    const together = await Promise.all(inputs.slice(0, 4).map((q) => chat.invoke([new HumanMessage(q)])));
    expect(together.map((m) => m.content)).toEqual(chatAlone);
    expect(overlap.generations).toBe(4);
  });
});

describe('drafting ahead with other generations running', () => {
  it('the drafter drafts the next chunk ahead while a generation runs alone, and not while others share the members', async () => {
    // Worker threads: passes run concurrently, so the drafter can draft while the verifiers score.
    const ensemble = await SafeEnsemble.load({ models: bundledModels(), loadOptions: { execution: 'worker' }, maxNewTokens: 48 });
    try {
      const question = QUESTIONS[1]!;
      const alone = await ensemble.generate(question);
      expect(alone.stats.pipeline!.draftedAhead).toBeGreaterThan(0);
      // The same request twice at once: they advance together, each seeing the other running
      // (only a tail where one has finished could see it alone).
      const both = await Promise.all([ensemble.generate(question), ensemble.generate(question)]);
      for (const r of both) {
        expect(r.text).toBe(alone.text);
        expect(r.stats.pipeline!.draftedAhead).toBeLessThan(alone.stats.pipeline!.draftedAhead);
      }
      expect(Math.min(...both.map((r) => r.stats.pipeline!.draftedAhead))).toBe(0);
    } finally {
      await ensemble.dispose();
    }
  });
});

describe('maxConcurrentGenerations', () => {
  it('bounds the generations running at once and admits the rest in call order', async () => {
    const ensemble = await SafeEnsemble.load({ models: bundledModels(), maxConcurrentGenerations: 2, maxNewTokens: 6 });
    try {
      const overlap = watchOverlap(ensemble.models);
      const started: number[] = [];
      const first = ensemble.models[0]!;
      const open = first.openSequence!.bind(first);
      let next = 0;
      const order = QUESTIONS.slice(0, 6).map((_, i) => i);
      first.openSequence = () => {
        started.push(order[next++]!);
        return open();
      };
      await Promise.all(QUESTIONS.slice(0, 6).map((q) => ensemble.generate(q)));
      expect(overlap.generations).toBe(2);
      expect(started).toEqual(order);
      expect(() => new SafeEnsemble(ensemble.models, { maxConcurrentGenerations: 0 })).toThrow(/maxConcurrentGenerations/);
    } finally {
      await ensemble.dispose();
    }
  });

  it('a call whose signal fires while it waits ends at once with finish abort; a disposed ensemble refuses waiting calls', async () => {
    const ensemble = await SafeEnsemble.load({ models: bundledModels(), maxConcurrentGenerations: 1, maxNewTokens: 8 });
    const running = ensemble.generate(QUESTIONS[0]!);
    const controller = new AbortController();
    const waiting = ensemble.generate(QUESTIONS[1]!, { signal: controller.signal });
    controller.abort();
    const aborted = await waiting;
    expect(aborted.finishReason).toBe('abort');
    expect(aborted.text).toBe('');
    expect((await running).finishReason).not.toBe('abort');
    const long = ensemble.generate(QUESTIONS[2]!, { maxNewTokens: 64 }).then(() => null, (e: Error) => e);
    const queued = ensemble.generate(QUESTIONS[3]!).then(() => null, (e: Error) => e);
    await new Promise((r) => setTimeout(r, 20));
    await ensemble.dispose();
    expect((await queued)?.message).toMatch(/dispose/);
    expect((await long)?.message).toMatch(/dispose/);
  });
});
