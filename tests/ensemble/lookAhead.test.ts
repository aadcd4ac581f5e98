/**
 * The look-ahead seam: a verifier's probability of a multi-token continuation, by the chain rule
 * over its own tokenization, scored through its cache — equal to the product of the per-token
 * probabilities forward() gives on the same sequence from an empty cache.
 */
import { loadModel, type CausalLM } from '../../src/index';
import { logSumExp, resolveOptions } from '../../src/research';
import { bundledModels } from '../../src/demo/models';
import { generationState } from '../../src/ensemble/generation';
import { renderPrompt } from '../../src/ensemble/prompt';
import { VerifierScorer } from '../../src/ensemble/scorer';
import { encodeResponse } from '../../src/text/continuation';

const [QWEN, MISTRAL] = bundledModels() as [string, string];

/** log P(ids[from..]) after prompt ++ ids[..from], by forward() over the whole sequence from an empty cache. */
async function chainRule(lm: CausalLM, prompt: number[], ids: number[], from: number): Promise<number> {
  lm.reset();
  const logits = await lm.forward([...prompt, ...ids], { logits: 'all' });
  let sum = 0;
  for (let k = from; k < ids.length; k++) {
    const row = logits.row(prompt.length + k - 1);
    sum += row[ids[k]!]! - logSumExp(row);
  }
  return sum;
}

describe('look-ahead: a verifier’s probability of a continuation', () => {
  let drafter: CausalLM;
  let verifier: CausalLM;
  beforeAll(async () => {
    [drafter, verifier] = await Promise.all([loadModel(QWEN), loadModel(MISTRAL)]);
  });
  afterAll(() => Promise.all([drafter.dispose(), verifier.dispose()]));

  it.each([
    ['', 'The answer is 62.'],
    ['Mia has', ' 62 marbles in all.'],
    ['She had 37 and found 25', ', so 37 + 25 = 62.'],
  ])('after %j: %j equals the product of forward()’s per-token probabilities', async (written, continuation) => {
    const input = 'Mia has 37 marbles. She finds 25 more. How many does she have now?';
    const models = [drafter, verifier];
    const prompts = models.map((m) => renderPrompt(m, input, { rawPrompt: false, reserve: 1 }));
    const state = generationState(models, prompts, 0, resolveOptions(2, {}));
    const scorer = new VerifierScorer(state);
    const bytes = new TextEncoder().encode(written);
    const got = await scorer.continuationProbability(0, bytes, continuation);
    expect(got).not.toBeNull();
    // The verifier's own tokenization of written ++ continuation, the continuation's tokens after the boundary.
    const spans = encodeResponse(verifier.tokenizer, prompts[1]!.context, written + continuation);
    const from = written.length === 0 ? 0 : spans.ends.indexOf(bytes.length) + 1;
    expect(got!.ids).toEqual(spans.ids.slice(from));
    expect(got!.ids.length).toBeGreaterThan(1);
    const expected = await chainRule(verifier, prompts[1]!.ids, spans.ids, from);
    expect(got!.logProbability).toBeCloseTo(expected, 4);
    expect(got!.probability).toBeCloseTo(Math.exp(expected), 8);
    // Through the cache: asked again with the cache holding another sequence, the same answer.
    const again = await scorer.continuationProbability(0, bytes, continuation);
    expect(again!.logProbability).toBeCloseTo(expected, 4);
  });

  it('is null where the verifier’s tokenization has no boundary after the written text', async () => {
    const models = [drafter, verifier];
    const prompts = models.map((m) => renderPrompt(m, 'Say hello.', { rawPrompt: false, reserve: 1 }));
    const scorer = new VerifierScorer(generationState(models, prompts, 0, resolveOptions(2, {})));
    // "Hel" + "lo": no tokenizer here ends a token after "Hel" in "Hello".
    expect(await scorer.continuationProbability(0, new TextEncoder().encode('Hel'), 'lo world')).toBeNull();
  });
});
