/**
 * The text-keyed scripted pair that `bench:engine` measures: each model continues the same text
 * whatever tokens were committed, so SAFE writes the whole script with either member drafting
 * (a token-keyed pair loses its place after an ensemble point in one order).
 */
import { loadModel, SafeEnsemble, type CausalLM } from '../../src/index';
import { TextTokenizer } from '../../src/text/tokenizer';
import { tokenizerDir } from '../../tools/fixtures/tinyDecoder';
import { scriptedModel } from '../helpers/scripted';

// The response starts a line: a sentencepiece member's first-token space would be its dummy prefix.
const PROMPT = 'Q: Count carefully, step by step.\nA:\n';
const COMPLETION = 'Step 1: Xiomara counts 14 photographs, finds 38 more, and now has 14 + 38 = 52. Step 2: Bartholomew counts 52 clementines, finds 75 more, and now has 52 + 75 = 127. The answer is 127.';

describe('text-scripted models (bench:engine pair)', () => {
  let qwen: CausalLM;
  let mistral: CausalLM;

  beforeAll(async () => {
    const common = { scripts: [{ prompt: PROMPT, completion: COMPLETION, rawPrompt: true }], context: 'text' as const, confidence: 0.9 };
    qwen = await loadModel(await scriptedModel({ ...common, tokenizer: 'qwen3' }));
    mistral = await loadModel(await scriptedModel({ ...common, tokenizer: 'llama2' }));
  }, 120_000);
  afterAll(async () => {
    await qwen?.dispose();
    await mistral?.dispose();
  });

  it('each writes the script greedily on its own', async () => {
    for (const lm of [qwen, mistral]) {
      const result = await new SafeEnsemble([lm]).generate(PROMPT, { rawPrompt: true, strategy: 'single', maxNewTokens: 200 });
      expect(result.text).toBe(COMPLETION);
    }
  }, 60_000);

  it('continues the text however it was tokenized (one byte-level token per character)', async () => {
    const tok = await TextTokenizer.fromFolder(tokenizerDir('qwen3'));
    const prompt = tok.encode(PROMPT, { addSpecialTokens: false });
    const cut = COMPLETION.indexOf('finds 38') + 3; // inside the word "finds"
    const odd = [...COMPLETION.slice(0, cut)].map((ch) => tok.idOfBytes(new TextEncoder().encode(ch))!);
    qwen.reset();
    const out = await qwen.forward([...prompt, ...odd]);
    qwen.reset();
    const best = new TextDecoder().decode(tok.tokenBytes(out.argmax(out.rows - 1)));
    // The script's own next token after "fin" is "ds" (or a piece of it), whatever came before.
    expect(best.length).toBeGreaterThan(0);
    expect(COMPLETION.slice(cut).startsWith(best)).toBe(true);
  }, 60_000);

  it.each([
    ['the Qwen vocabulary drafts', 0],
    ['the Mistral vocabulary drafts', 1],
  ])('SAFE writes the whole script when %s', async (_, drafter) => {
    const members = drafter === 0 ? [qwen, mistral] : [mistral, qwen];
    const result = await new SafeEnsemble(members).generate(PROMPT, { rawPrompt: true, maxNewTokens: 200 });
    expect(result.text).toBe(COMPLETION);
    expect(result.stats.draftedTokens).toBeGreaterThan(0);
  }, 60_000);
});
