import { loadModel, type CausalLM } from '../../src/index';
import { argmax } from '../../src/research';
import type { FixtureModelOptions } from '../../tools/fixtures/tinyDecoder';
import { fixtureModel } from '../helpers/fixtures';

const STEPS = 32;

/** Every graph contract the runtime claims to drive, each with a real tokenizer. */
const VARIANTS: Array<[string, FixtureModelOptions]> = [
  ['kv cache + position_ids (qwen3)', { tokenizer: 'qwen3', hiddenSize: 16 }],
  ['no position_ids (llama2)', { tokenizer: 'llama2', positionIds: false }],
  ['grouped-query attention (llama3)', { tokenizer: 'llama3', hiddenSize: 16, numHeads: 4, numKeyValueHeads: 2 }],
  ['merged decoder with use_cache_branch (llama2)', { tokenizer: 'llama2', cache: 'merged', fileName: 'decoder_model_merged.onnx' }],
  ['num_logits_to_keep (llama2)', { tokenizer: 'llama2', logitsToKeep: 'num_logits_to_keep' }],
  ['logits_to_keep (gemma3)', { tokenizer: 'gemma3', hiddenSize: 8, numHeads: 2, logitsToKeep: 'logits_to_keep' }],
  ['no KV cache (llama2)', { tokenizer: 'llama2', cache: 'none' }],
  ['float16 cache (llama2)', { tokenizer: 'llama2', cacheDType: 'float16', numKeyValueHeads: 1 }],
  ['external data (llama2)', { tokenizer: 'llama2', externalData: true }],
];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function greedyWithCache(lm: CausalLM, prompt: number[], steps: number): Promise<{ ids: number[]; rows: Float32Array[] }> {
  let logits = await lm.forward(prompt, { logits: 'last' });
  const ids = [...prompt];
  const rows = [Float32Array.from(logits.row(-1))];
  for (let i = 0; i < steps; i++) {
    const next = argmax(logits.row(-1));
    ids.push(next);
    logits = await lm.forward([next], { logits: 'last' });
    rows.push(Float32Array.from(logits.row(-1)));
  }
  return { ids, rows };
}

describe.each(VARIANTS)('CausalLM on %s', (_name, options) => {
  let lm: CausalLM;
  beforeAll(async () => {
    // The contract as exported (the logits_to_keep rewrite is tested in logitsRewrite.test.ts).
    lm = await loadModel(fixtureModel(options), { logitsToKeep: false });
  });
  afterAll(async () => {
    await lm.dispose();
  });

  it('discovers the graph contract', () => {
    const g = lm.info.graph;
    expect(g.hasPositionIds).toBe(options.positionIds !== false);
    expect(g.numCacheLayers).toBe(options.cache === 'none' ? 0 : 2);
    expect(g.hasUseCacheBranch).toBe(options.cache === 'merged');
    expect(g.logitsToKeepInput).toBe(options.logitsToKeep || null);
    expect(g.cacheDType).toBe(options.cacheDType ?? 'float32');
    expect(lm.info.vocabSize).toBe(lm.tokenizer.vocabSize);
  });

  it(`KV-cache decoding equals full recomputation over ${STEPS} steps`, async () => {
    lm.reset();
    const prompt = lm.tokenizer.encode('The quick brown fox jumps over the lazy dog.');
    const { ids, rows } = await greedyWithCache(lm, prompt, STEPS);
    expect(lm.length).toBe(prompt.length + STEPS);
    lm.reset();
    const full = await lm.forward(ids);
    for (let i = 0; i <= STEPS; i++) {
      expect(maxAbsDiff(full.row(prompt.length - 1 + i), rows[i]!)).toBeLessThan(1e-4);
    }
  });

  it('crop-then-refeed equals an uninterrupted run', async () => {
    lm.reset();
    const prompt = lm.tokenizer.encode('Once upon a time');
    const straight = await greedyWithCache(lm, prompt, 12);
    lm.reset();
    const first = await greedyWithCache(lm, prompt, 8);
    // Roll back 5 generated tokens and feed the same ones again.
    lm.crop(prompt.length + 3);
    expect(lm.tokens).toEqual(first.ids.slice(0, prompt.length + 3));
    const refed = await lm.forward(straight.ids.slice(prompt.length + 3, prompt.length + 12));
    for (let i = 0; i < 9; i++) {
      expect(maxAbsDiff(refed.row(i), straight.rows[4 + i]!)).toBeLessThan(1e-4);
    }
  });

  it('returns only the rows asked for', async () => {
    lm.reset();
    const ids = lm.tokenizer.encode('one two three four');
    const all = await lm.forward(ids);
    expect(all.rows).toBe(ids.length);
    lm.reset();
    const two = await lm.forward(ids, { logits: 2 });
    expect(two.rows).toBe(2);
    expect(maxAbsDiff(two.row(1), all.row(-1))).toBeLessThan(1e-4);
    expect(maxAbsDiff(two.row(0), all.row(-2))).toBeLessThan(1e-4);
  });
});

describe('prefill in pieces (graphs without logits_to_keep)', () => {
  const dir = fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16 });
  it('gives the rows of one whole run, leaves the cache as one run does, and each run stays within the budget', async () => {
    const whole = await loadModel(dir, { logitsToKeep: false });
    // 151,669 columns × 4 bytes × 3 rows: at most 3 rows per onnxruntime run.
    // Inline, so the test can count the session's runs on this thread.
    const pieces = await loadModel(dir, { logitsBudgetBytes: 151_669 * 4 * 3, execution: 'inline', logitsToKeep: false });
    try {
      const ids = whole.tokenizer.encode('Mia has 37 marbles. She finds 25 more marbles in the garden. How many now?');
      expect(ids.length).toBeGreaterThan(10);
      let runs = 0;
      const widest: number[] = [];
      const session = (pieces as unknown as { backend: { session: { run: (f: Record<string, { dims: number[] }>) => Promise<unknown> } } }).backend.session;
      const run = session.run.bind(session);
      session.run = (feeds) => {
        runs++;
        widest.push(feeds.input_ids!.dims[1]!);
        return run(feeds);
      };
      for (const rows of [1, 5, ids.length] as const) {
        whole.reset();
        pieces.reset();
        runs = 0;
        widest.length = 0;
        const a = await whole.forward(ids, { logits: rows });
        const b = await pieces.forward(ids, { logits: rows });
        expect(b.rows).toBe(rows);
        expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-4);
        expect(runs).toBe(Math.ceil(ids.length / 3));
        expect(Math.max(...widest)).toBeLessThanOrEqual(3);
        // The caches continue alike.
        const nextA = await whole.forward([argmax(a.row(-1))], { logits: 'last' });
        const nextB = await pieces.forward([argmax(b.row(-1))], { logits: 'last' });
        expect(maxAbsDiff(nextA.data, nextB.data)).toBeLessThan(1e-4);
        expect(pieces.tokens).toEqual(whole.tokens);
      }
    } finally {
      await whole.dispose();
      await pieces.dispose();
    }
  });
});
