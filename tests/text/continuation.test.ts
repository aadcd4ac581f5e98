import { encodeContinuation, fromUtf8, ResponseTokenization, utf8, validUtf8Length } from '../../src/research';
import { renderPromptWith } from '../../src/ensemble/prompt';
import { ALL_TOKENIZERS, realTokenizer } from '../helpers/tokenizers';

const TEXTS = [
  ' Mia starts with 37 marbles. After finding 25 more she has 37 + 25 = 62. The answer is 62.',
  'plugins Алекс梳理 unofficial稳步推进 cach=[]\r\n Glyphs 𓀀𓁐 and ꙮ — naïve e\u0301 👩‍👩‍👧!',
  '  def f(x):\n\treturn x**2  # square\n\n<|im_end|> </s> <0x0A>',
];

/** Deterministic chunk sizes that keep changing. */
function* chunks(seed: number, total: number): Generator<number> {
  let at = 0;
  let s = seed;
  while (at < total) {
    s = (s * 1103515245 + 12345) % 2147483648;
    at = Math.min(total, at + 1 + (s % 9));
    yield at;
  }
}

describe.each(ALL_TOKENIZERS)('incremental response tokenization with %s', (name) => {
  it.each(TEXTS.map((t, i) => [i, t]))('equals re-encoding the whole response (text %i), also when the tail is rewritten', async (_i, text) => {
    const tok = await realTokenizer(name);
    const prompt = renderPromptWith(tok, 'Q: a question\nA:', { rawPrompt: true });
    const bytes = utf8(text as string);
    for (const seed of [1, 2, 3]) {
      const tokens = new ResponseTokenization(tok, prompt.context);
      let committed = 0;
      for (const end of chunks(seed, bytes.length)) {
        // A draft of a few bytes past `end` that is then thrown away, as SAFE does.
        const draft = new Uint8Array([...bytes.subarray(0, end), ...utf8(' zz')]);
        tokens.update(draft, committed);
        tokens.update(bytes.subarray(0, end), committed);
        committed = Math.max(0, end - 4);
        const valid = validUtf8Length(bytes.subarray(0, end));
        const str = fromUtf8(bytes.subarray(0, valid));
        // Where the prompt and the response merge into one token, the response is encoded on its own.
        const full = encodeContinuation(tok, prompt.context, str) ?? encodeContinuation(tok, { text: '', special: null }, str)!;
        expect(tokens.ids).toEqual(full.ids);
        expect(tokens.ends).toEqual(full.ends);
      }
      expect(tokens.fullReencodes).toBeLessThan(12);
    }
  });
});
