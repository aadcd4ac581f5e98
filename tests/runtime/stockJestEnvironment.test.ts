/**
 * @jest-environment node
 *
 * A project testing its app with Jest's stock `node` environment (no typed-array sharing, as the
 * library's own tests/setup/ortEnvironment.cjs does): forward passes and whole generations must
 * work there too.
 */
import { runInThisContext } from 'node:vm';
import { loadModel, SafeEnsemble } from '../../src/index';
import { fixtureModel } from '../helpers/fixtures';

const MODELS = [21, 22].map((seed) => fixtureModel({ tokenizer: 'llama2', seed, logitScale: 2 }));

describe("Jest's stock node environment", () => {
  it('really is another realm than the main one', () => {
    expect(runInThisContext('Float32Array')).not.toBe(Float32Array);
  });

  it('runs forward passes, with cached steps equal to a full recompute', async () => {
    const lm = await loadModel(MODELS[0]!);
    try {
      const ids = lm.tokenizer.encode('Mia has 37 marbles.');
      const full = await lm.forward(ids, { logits: 'last' });
      expect(full.data).toBeInstanceOf(Float32Array);
      const lastFull = Array.from(full.row(-1));
      lm.reset();
      await lm.forward(ids.slice(0, -1), { logits: 'last' });
      const step = await lm.forward(ids.slice(-1), { logits: 'last' });
      Array.from(step.row(-1)).forEach((v, i) => expect(Math.abs(v - lastFull[i]!)).toBeLessThan(1e-4));
    } finally {
      await lm.dispose();
    }
  });

  it('generates with SAFE', async () => {
    const ensemble = await SafeEnsemble.load({ models: MODELS });
    try {
      const result = await ensemble.generate('Q: What is 2 + 3?\nA:', { rawPrompt: true, maxNewTokens: 8 });
      expect(result.stats.generatedTokens).toBeGreaterThan(0);
      expect(['eos', 'length', 'stop']).toContain(result.finishReason);
    } finally {
      await ensemble.dispose();
    }
  });
});
