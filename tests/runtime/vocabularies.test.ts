/**
 * A tokenizer with special ids above the model's logits width, as Gemma 3's real tokenizer
 * (262,145 ids: `<image_soft_token>` at 262,144) with its 262,144-column logits: the model loads,
 * says so once, and the ids it can never produce are out of every lookup and distribution.
 */
import { loadModel, SafeEnsemble, UnsupportedGraphError } from '../../src/index';
import { Vocabulary } from '../../src/ensemble/vocabulary';
import { fixtureModel } from '../helpers/fixtures';

const GEMMA_WIDTH = 262_144;
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many does she have?\nA:';

describe('special ids above the logits width', () => {
  const gemma = fixtureModel({ tokenizer: 'gemma3', vocabSize: GEMMA_WIDTH, hiddenSize: 16, seed: 8, logitScale: 2 });

  it('load, warn once, and leave those ids out of lookups', async () => {
    const warnings: string[] = [];
    const lm = await loadModel(gemma, { onWarning: (w) => warnings.push(w) });
    try {
      expect(lm.tokenizer.vocabSize).toBe(GEMMA_WIDTH + 1);
      expect(lm.info.vocabSize).toBe(GEMMA_WIDTH);
      expect(lm.tokenizer.producibleIds).toBe(GEMMA_WIDTH);
      const about = warnings.filter((w) => w.includes('<image_soft_token>'));
      expect(about).toHaveLength(1);
      expect(about[0]).toMatch(/can never produce them/);
      expect(lm.tokenizer.idOfBytes(new TextEncoder().encode('<image_soft_token>'))).toBeNull();
      expect(Vocabulary.of(lm.tokenizer).size).toBe(GEMMA_WIDTH);
    } finally {
      await lm.dispose();
    }
  });

  it('SAFE, every-token and GaC run with such a member; no id past the width is ever appended', async () => {
    const ensemble = await SafeEnsemble.load({ models: [fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 5, logitScale: 2 }), gemma], loadOptions: { onWarning: () => undefined } });
    try {
      for (const options of [{}, { strategy: 'every-token' as const }, { baseEnsembler: 'gac' as const }, { temperature: 0.8, seed: 1 }]) {
        const r = await ensemble.generate(PROMPT, { rawPrompt: true, maxNewTokens: 16, ...options });
        expect(r.stats.generatedTokens).toBeGreaterThan(0);
        expect(Math.max(...ensemble.models[1]!.tokens)).toBeLessThan(GEMMA_WIDTH);
      }
    } finally {
      await ensemble.dispose();
    }
  });

  it('ordinary ids past the width still mean another model’s tokenizer', async () => {
    await expect(loadModel(fixtureModel({ tokenizer: 'gemma3', vocabSize: GEMMA_WIDTH - 1, hiddenSize: 16, seed: 8 }))).rejects.toThrow(UnsupportedGraphError);
  });
});
