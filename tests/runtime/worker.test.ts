/**
 * Members in worker threads: the same logits and generations as inline sessions, a free event
 * loop while a pass runs, recovery from a worker that dies, and no worker or session left behind.
 * (Errors raised inside workers — NaN logits, onnxruntime failures — are the cases of
 * tests/reliability/errors.test.ts, which runs in worker mode by default.)
 */
import { loadModel, SafeEnsemble, WorkerError, type CausalLM } from '../../src/index';
import { liveSessionCount, liveWorkerCount } from '../../src/research';
import type { WorkerBackend } from '../../src/runtime/workerBackend';
import { fixtureModel } from '../helpers/fixtures';
import { comparable } from '../helpers/results';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const MODELS = [fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 31, logitScale: 2 }), fixtureModel({ tokenizer: 'llama2', seed: 32, logitScale: 2 })];
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many now?\nA:';

/**
 * Temporary folders of rewritten graphs (see openSession.ts) made from the model folder that
 * holds `marker`: a rewritten folder links every file of its model's folder, so the marker tells
 * this test's folders from those of test files running beside it.
 */
function rewrittenFolders(marker: string): number {
  const mine = (name: string) => {
    try {
      return readdirSync(join(tmpdir(), name)).includes(marker);
    } catch {
      return false; // removed while listed
    }
  };
  return readdirSync(tmpdir()).filter((name) => name.startsWith('.lse-rewritten-') && mine(name)).length;
}

/** The worker behind a model loaded with execution 'worker' (test-only access). */
function workerOf(lm: CausalLM): WorkerBackend {
  return (lm as unknown as { backend: WorkerBackend }).backend;
}

describe('worker execution', () => {
  let sessionsBefore: number;
  let workersBefore: number;
  beforeAll(() => {
    sessionsBefore = liveSessionCount();
    workersBefore = liveWorkerCount();
  });
  afterAll(() => {
    expect(liveSessionCount()).toBe(sessionsBefore);
    expect(liveWorkerCount()).toBe(workersBefore);
  });

  it('gives bit-identical logits to an inline session, through prefill, steps and crops', async () => {
    const inline = await loadModel(MODELS[0]!, { execution: 'inline' });
    const worker = await loadModel(MODELS[0]!, { execution: 'worker' });
    try {
      expect(inline.execution).toBe('inline');
      expect(worker.execution).toBe('worker');
      expect(liveWorkerCount()).toBe(workersBefore + 1);
      const ids = inline.tokenizer.encode(PROMPT);
      const steps: Array<[number[], number | 'last' | 'all']> = [[ids, 3], [[11], 'last'], [[12, 13], 'all']];
      for (const lm of [inline, worker]) lm.crop(0);
      for (const [feed, rows] of steps) {
        const a = await inline.forward(feed, { logits: rows });
        const b = await worker.forward(feed, { logits: rows });
        expect(b.rows).toBe(a.rows);
        expect(b.data).toEqual(a.data);
        for (let r = 0; r < a.rows; r++) expect(b.argmax(r)).toBe(a.argmax(r));
      }
      inline.crop(ids.length - 2);
      worker.crop(ids.length - 2);
      expect(worker.tokens).toEqual(inline.tokens);
      const a = await inline.forward([7, 8], { logits: 'last' });
      const b = await worker.forward([7, 8], { logits: 'last' });
      expect(b.data).toEqual(a.data);
    } finally {
      await inline.dispose();
      await worker.dispose();
    }
    expect(liveWorkerCount()).toBe(workersBefore);
  });

  it('keeps the event loop turning while a forward pass runs', async () => {
    const lm = await loadModel(MODELS[0]!, { execution: 'worker' });
    try {
      const ids = lm.tokenizer.encode(PROMPT.repeat(4));
      let turns = 0;
      let pending = true;
      const spin = (): void => {
        if (!pending) return;
        turns++;
        setImmediate(spin);
      };
      setImmediate(spin);
      await lm.forward(ids, { logits: 'all' });
      pending = false;
      // Inline, onnxruntime-node runs the whole pass inside the call: no turn could happen.
      expect(turns).toBeGreaterThan(1);
    } finally {
      await lm.dispose();
    }
  });

  it('SAFE and every-token generate exactly as with inline sessions', async () => {
    const load = (execution: 'worker' | 'inline') => SafeEnsemble.load({ models: MODELS, maxNewTokens: 16, trace: true, loadOptions: { execution } });
    const inline = await load('inline');
    const worker = await load('worker');
    try {
      for (const strategy of ['safe', 'every-token', 'gac-threshold'] as const) {
        const a = await inline.generate(PROMPT, { rawPrompt: true, strategy });
        const b = await worker.generate(PROMPT, { rawPrompt: true, strategy });
        expect(comparable(b)).toEqual(comparable(a));
      }
    } finally {
      await inline.dispose();
      await worker.dispose();
    }
  });

  it('rejects session options that cannot reach a worker, and unknown execution modes', async () => {
    await expect(loadModel(MODELS[0]!, { execution: 'worker', sessionOptions: { logSeverityLevel: 3, extra: { f: () => 1 } } as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'sessionOptions' });
    await expect(loadModel(MODELS[0]!, { execution: 'threads' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'execution' });
    expect(liveWorkerCount()).toBe(workersBefore);
  });

  it('a worker that dies fails the waiting call with WorkerError; the next call restarts it with an empty cache', async () => {
    // A private copy of the model whose folder holds a marker file (see rewrittenFolders).
    const copy = mkdtempSync(join(tmpdir(), 'lse-worker-model-'));
    cpSync(MODELS[0]!, copy, { recursive: true });
    const marker = `marker-${basename(copy)}`;
    writeFileSync(join(copy, 'onnx', marker), ''); // beside the graph, whose folder is linked
    const lm = await loadModel(copy, { execution: 'worker' });
    const fresh = await loadModel(MODELS[0]!, { execution: 'inline' });
    try {
      // The first open's graph was rewritten on this thread, a restart's in the worker: both
      // apply the load-time rewrites and remove their temporary folder once the session exists.
      expect([lm.info.incrementalCache, lm.info.inGraphTopK]).toEqual([fresh.info.incrementalCache, fresh.info.inGraphTopK]);
      expect(lm.info.incrementalCache).toBe(true);
      expect(rewrittenFolders(marker)).toBe(0);
      const ids = lm.tokenizer.encode(PROMPT);
      await lm.forward(ids);
      const inFlight = lm.forward([5, 6, 7]);
      await workerOf(lm).terminateForTest();
      // The worker goes between two passes (a pass in progress is let finish: see quiesce), so
      // the waiting call either got its reply first or fails with WorkerError.
      const error = await inFlight.then(() => null, (e: unknown) => e);
      if (error !== null) {
        expect(error).toBeInstanceOf(WorkerError);
        expect((error as WorkerError).code).toBe('WORKER_FAILED');
        expect((error as Error).message).toMatch(/worker thread exited .*next call starts a new one/);
      }
      // Either way the restarted worker's cache is empty, and the model knows it.
      expect(lm.length).toBe(0);
      // Recovery: the same model works again and continues like a fresh one.
      const again = await lm.forward(ids, { logits: 'last' });
      const expected = await fresh.forward(ids, { logits: 'last' });
      expect(again.data).toEqual(expected.data);
      expect(rewrittenFolders(marker)).toBe(0);
      expect(liveWorkerCount()).toBe(workersBefore + 1);
    } finally {
      await lm.dispose();
      await fresh.dispose();
      rmSync(copy, { recursive: true, force: true });
    }
    expect(liveWorkerCount()).toBe(workersBefore);
    expect(liveSessionCount()).toBe(sessionsBefore);
  });

  it('rows scored before the worker died read as WorkerError (not as rows cropped away)', async () => {
    const lm = await loadModel(MODELS[0]!, { execution: 'worker' });
    try {
      const scores = await lm.score(lm.tokenizer.encode(PROMPT), { rows: 2, topK: 3 });
      const before = liveWorkerCount();
      await workerOf(lm).terminateForTest();
      // Once the exit is seen the cache is gone: a held row can no longer be read.
      while (liveWorkerCount() === before) await new Promise((r) => setTimeout(r, 5));
      await expect(scores.at(0).row()).rejects.toBeInstanceOf(WorkerError);
      await expect(scores.at(1).logitOf(5)).rejects.toThrow(/worker thread exited/);
      // A new pass restarts the worker and reads work again.
      const again = await lm.score(lm.tokenizer.encode(PROMPT), { rows: 1, topK: 3 });
      expect((await again.at(0).row()).length).toBe(lm.info.vocabSize);
    } finally {
      await lm.dispose();
    }
  });

  it('an ensemble whose member worker dies mid-generation fails that call and then generates like a fresh one', async () => {
    const ensemble = await SafeEnsemble.load({ models: MODELS, maxNewTokens: 24, loadOptions: { execution: 'worker' } });
    const reference = await SafeEnsemble.load({ models: MODELS, maxNewTokens: 24, loadOptions: { execution: 'inline' } });
    try {
      const expected = await reference.generate(PROMPT, { rawPrompt: true });
      const stream = ensemble.stream(PROMPT, { rawPrompt: true });
      const first = await stream.next();
      expect(first.done).toBe(false);
      await workerOf(ensemble.models[1] as CausalLM).terminateForTest();
      let failure: unknown = null;
      try {
        for (;;) if ((await stream.next()).done) break;
      } catch (error) {
        failure = error;
      }
      // The generation may have finished its last pass before the worker went: then it succeeded.
      if (failure !== null) expect(failure).toBeInstanceOf(WorkerError);
      const after = await ensemble.generate(PROMPT, { rawPrompt: true });
      expect(after.text).toBe(expected.text);
      expect(after.stats.forwardPasses).toEqual(expected.stats.forwardPasses);
    } finally {
      await ensemble.dispose();
      await reference.dispose();
    }
  });

  it('process.exit() while a worker is in the middle of a pass exits cleanly (no abort)', () => {
    // onnxruntime-node aborts the process when a worker is torn down inside session.run; the
    // library lets the pass finish first. The built package runs in a process of its own.
    const dir = fixtureModel({ tokenizer: 'qwen3', hiddenSize: 64, seed: 34 });
    const script = `
      const { loadModel } = require('./dist/cjs/index.js');
      loadModel(${JSON.stringify(dir)}, { execution: 'worker', logitsToKeep: false }).then((lm) => {
        const ids = Array.from({ length: 400 }, (_, i) => 100 + i);
        lm.forward(ids, { logits: 'all' }).catch(() => undefined);
        setTimeout(() => process.exit(0), 150);
      });`;
    const child = spawnSync(process.execPath, ['-e', script], { cwd: join(__dirname, '..', '..'), encoding: 'utf8', timeout: 120_000 });
    expect(child.stderr).not.toMatch(/terminate called|Aborted/);
    expect(child.status).toBe(0);
  });

  it('runs in a worker when the process itself is an ES-module eval (node --input-type=module -e)', () => {
    // Workers inherit the parent's Node options, and one started from a file refuses --input-type.
    const dir = fixtureModel({ tokenizer: 'qwen3', hiddenSize: 64, seed: 34 });
    const script = `
      const { loadModel } = await import('./dist/esm/index.js');
      const lm = await loadModel(${JSON.stringify(dir)}, { execution: 'worker' });
      const out = await lm.forward([100, 101, 102]);
      console.log(lm.execution, out.vocabSize);
      await lm.dispose();`;
    for (const flags of [['--input-type=module'], ['--input-type', 'module']]) {
      const child = spawnSync(process.execPath, [...flags, '-e', script], { cwd: join(__dirname, '..', '..'), encoding: 'utf8', timeout: 120_000 });
      expect(child.stderr).toBe('');
      expect(child.stdout.trim()).toMatch(/^worker \d+$/);
      expect(child.status).toBe(0);
    }
  });
});
