/**
 * Logits padded past the tokenizer's ids (Qwen's 151,936 columns over 151,669 ids, Phi-3's 32,064
 * over 32,000): the padding columns have no token, so they are never the greedy choice, never in
 * a top-k (the graph's own TopK included), never drawn, however high the model puts them.
 */
import { loadModel, SafeEnsemble } from '../../src/index';
import { PADDING_LOGIT } from '../../src/runtime/sessionRunner';
import { fixtureModel } from '../helpers/fixtures';

const TOKENS = 32_000; // the Llama 2 tokenizer's ids
const WIDTH = TOKENS + 1024; // the most padding a model may have over this tokenizer
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many does she have?\nA:';

describe('padding columns past the tokenizer', () => {
  const padded = fixtureModel({ tokenizer: 'llama2', vocabSize: WIDTH, hiddenSize: 16, seed: 61, logitScale: 2 });

  it('read as PADDING_LOGIT in every row, and are in no top-k (in-graph or not)', async () => {
    for (const inGraphTopK of [true, false]) {
      const lm = await loadModel(padded, { inGraphTopK });
      try {
        expect(lm.info.vocabSize).toBe(WIDTH);
        const ids = lm.tokenizer.encode(PROMPT);
        const logits = await lm.forward(ids, { logits: 'all' });
        for (let r = 0; r < logits.rows; r++) {
          const row = logits.row(r);
          expect(row.subarray(TOKENS).every((x) => x === PADDING_LOGIT)).toBe(true);
          expect(logits.argmax(r)).toBeLessThan(TOKENS);
        }
        lm.reset();
        const scores = await lm.score(ids, { rows: 'all', topK: 2000 });
        for (let r = 0; r < scores.rows; r++) expect(Math.max(...scores.at(r).top().ids)).toBeLessThan(TOKENS);
      } finally {
        await lm.dispose();
      }
    }
  });

  it('are never drafted or drawn: hot sampling over 1,024 padding columns generates only real tokens', async () => {
    const ensemble = await SafeEnsemble.load({ models: [padded, fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 62, logitScale: 2 })] });
    try {
      for (const options of [{ temperature: 50, seed: 3 }, { temperature: 50, seed: 4, strategy: 'every-token' as const }, { strategy: 'single' as const, temperature: 50, seed: 5 }]) {
        // Near-uniform at T = 50: without the mask about 3% of the draws would be padding ids.
        const r = await ensemble.generate(PROMPT, { rawPrompt: true, maxNewTokens: 80, ...options });
        expect(r.stats.generatedTokens).toBeGreaterThan(40);
        expect(Math.max(...ensemble.models[0]!.tokens)).toBeLessThan(TOKENS);
      }
    } finally {
      await ensemble.dispose();
    }
  });
});
