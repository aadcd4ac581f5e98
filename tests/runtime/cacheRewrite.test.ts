/**
 * The incremental-cache rewrite (sequence-major past inputs, new-row outputs, O(1) crop) gives
 * bit-identical logits to the graph as exported, through prefills, steps and rollbacks, for
 * every cache layout the runtime supports; graphs it cannot rewrite run as exported.
 */
import { loadModel, type CausalLM } from '../../src/index';
import { rewriteForIncrementalCache } from '../../src/runtime/cacheRewrite';
import { fixtureModel } from '../helpers/fixtures';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FixtureModelOptions } from '../../tools/fixtures/tinyDecoder';

const VARIANTS: Array<[string, FixtureModelOptions]> = [
  ['float32 cache', { tokenizer: 'qwen3', hiddenSize: 16, seed: 41, logitScale: 2 }],
  ['merged decoder (use_cache_branch)', { tokenizer: 'llama2', seed: 42, cache: 'merged' }],
  ['float16 cache', { tokenizer: 'llama2', seed: 43, cacheDType: 'float16' }],
  ['grouped-query attention, positions from the mask, logits_to_keep', { tokenizer: 'llama2', seed: 44, numHeads: 4, numKeyValueHeads: 2, positionIds: false, logitsToKeep: 'logits_to_keep' }],
  // Written next to links to its weights file for the session to find it; the links go after.
  ['external-data weights', { tokenizer: 'llama2', seed: 45, externalData: true }],
];

/** Runs the same prefill / step / crop sequence on both models and compares every row. */
async function sameThroughRollbacks(a: CausalLM, b: CausalLM): Promise<void> {
  const ids = a.tokenizer.encode('Mia has 37 marbles. She finds 25 more. How many marbles now?');
  let x = await a.forward(ids, { logits: 3 });
  let y = await b.forward(ids, { logits: 3 });
  expect(y.data).toEqual(x.data);
  for (let i = 0; i < 12; i++) {
    const next = x.argmax(-1);
    const feed = i % 4 === 3 ? [next, 11, 12] : [next];
    x = await a.forward(feed, { logits: 'all' });
    y = await b.forward(feed, { logits: 'all' });
    expect(y.data).toEqual(x.data);
    if (i % 3 === 1) {
      const to = Math.max(1, a.length - 1 - (i % 5));
      a.crop(to);
      b.crop(to);
    }
  }
  // Back to a short prefix and on again: rows written before the crop are overwritten.
  a.crop(4);
  b.crop(4);
  expect((await b.forward([21, 22, 23], { logits: 'all' })).data).toEqual((await a.forward([21, 22, 23], { logits: 'all' })).data);
}

describe.each(VARIANTS)('incremental KV cache: %s', (_name, options) => {
  it('is used, and gives bit-identical logits to the exported graph through steps and crops', async () => {
    const dir = fixtureModel(options);
    const exported = await loadModel(dir, { incrementalCache: false });
    const rewritten = await loadModel(dir);
    try {
      expect(exported.info.incrementalCache).toBe(false);
      expect(rewritten.info.incrementalCache).toBe(true);
      // The contract is reported with the names and shapes as exported.
      expect(rewritten.info.graph).toEqual(exported.info.graph);
      await sameThroughRollbacks(exported, rewritten);
    } finally {
      await exported.dispose();
      await rewritten.dispose();
    }
  });
});

describe('a rewritten graph with external-data weights', () => {
  it('is loaded from a temporary folder of links that is gone once the session exists', async () => {
    const dir = fixtureModel({ tokenizer: 'llama2', seed: 45, externalData: true });
    // A temp folder of this test's own (workers take the environment as it is when they start).
    const scratch = mkdtempSync(join(tmpdir(), 'lse-tmpdir-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = scratch;
    try {
      const lm = await loadModel(dir);
      try {
        expect(lm.info.incrementalCache).toBe(true);
        expect(readdirSync(scratch)).toEqual([]); // the folder of links is gone
        expect((await lm.forward([1, 2, 3])).rows).toBe(3);
      } finally {
        await lm.dispose();
      }
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('graphs the rewrite leaves alone', () => {
  it('runs graphs without a KV cache as exported', async () => {
    const dir = fixtureModel({ tokenizer: 'llama2', seed: 46, cache: 'none' });
    expect(rewriteForIncrementalCache(readFileSync(join(dir, 'onnx', 'model.onnx')))).toBeNull();
    const lm = await loadModel(dir);
    try {
      expect(lm.info.incrementalCache).toBe(false);
    } finally {
      await lm.dispose();
    }
  });

  it('returns null for bytes that are not a model with an inline graph', () => {
    expect(rewriteForIncrementalCache(new Uint8Array([0x08, 0x07]))).toBeNull();
  });
});
