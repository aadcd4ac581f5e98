import { isCharBoundary, utf8 } from '../../src/research';
import { ALL_TOKENIZERS, realTokenizer } from '../helpers/tokenizers';

/** Mixed corpus: English, code, numbers, CJK, emoji, combining marks, whitespace oddities. */
const CORPUS = [
  'The answer is 12345 and photosynthesis.',
  ' Mia starts with 37 marbles. After finding 25 more she has 37 + 25 = 62.',
  'function add(a, b) {\n\treturn a + b; // sum\n}\n',
  'const x = [1, 2, 3].map((n) => n ** 2);',
  '3.14159 -42 1e-9 0x1F 1,000,000',
  '日本語のテキストと中文混合。한국어 문장.',
  'Emoji: 🎉🚀 family 👩‍👩‍👧 flag 🇫🇷 skin 👍🏽',
  'Combining: e\u0301 a\u0308 n\u0303 \u1100\u1161\u11a8 (decomposed) vs é ä ñ 각',
  'Zalgo: Z\u0351\u036b\u0343a\u0352l\u0350g\u0344o',
  '  leading spaces, trailing spaces  ',
  '\n\nnewlines\r\nand\ttabs\n',
  'Incorrect Inc orr ect',
  'Right-to-left: مرحبا بالعالم שלום',
  '<0x0A> looks like a byte token, <|im_end|> and </s> look like special tokens',
  'x',
  ' ',
];

describe.each(ALL_TOKENIZERS)('byte offsets with the %s tokenizer', (name) => {
  it.each(CORPUS.map((t) => [JSON.stringify(t).slice(0, 40), t]))('reassemble %s exactly', async (_label, text) => {
    const tok = await realTokenizer(name);
    const { ids, starts, ends, bytes } = tok.offsets(text);
    expect(bytes).toEqual(utf8(text));
    expect(ids.length).toBeGreaterThan(0);
    expect(starts[0]).toBe(0);
    expect(ends[ids.length - 1]).toBe(bytes.length);
    const pieces: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (i > 0) expect(starts[i]).toBe(ends[i - 1]);
      expect(ends[i]).toBeGreaterThanOrEqual(starts[i]!);
      pieces.push(...bytes.subarray(starts[i], ends[i]));
    }
    expect(Buffer.from(pieces).toString('utf8')).toBe(text);
  });

  it('keeps special-token strings in user text as plain text unless asked', async () => {
    const tok = await realTokenizer(name);
    const text = `a ${tok.specialTokenIds.size ? [...tok.specialTokenIds].map((id) => tok.tokenString(id))[0] : ''} b`;
    const plain = tok.encode(text);
    expect(plain.some((id) => tok.isSpecial(id))).toBe(false);
    const eos = tok.tokenString(tok.eosTokenIds[0]!);
    expect(tok.encode(`x${eos}`).some((id) => tok.isEos(id))).toBe(false);
    expect(tok.encode(`x${eos}`, { allowSpecialTokens: true }).some((id) => tok.isEos(id))).toBe(true);
  });

  it('splits multi-byte characters only where the bytes say so', async () => {
    const tok = await realTokenizer(name);
    const text = 'Rare glyphs: 𓀀𓁐 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ';
    const { ids, ends, bytes } = tok.offsets(text);
    // Byte-level and byte-fallback tokenizers may end tokens inside a character; those
    // offsets must be detectable as non-boundaries.
    for (let i = 0; i < ids.length; i++) {
      const inside = !isCharBoundary(bytes, ends[i]!);
      if (inside) expect(bytes[ends[i]!]! & 0xc0).toBe(0x80);
    }
  });
});

describe('tokenizer facts', () => {
  it('reads BOS, EOS and specials from the tokenizer files', async () => {
    const qwen = await realTokenizer('qwen3');
    expect(qwen.kind).toBe('byte-level');
    expect(qwen.bosTokenId).toBeNull();
    expect(qwen.tokenString(qwen.eosTokenIds[0]!)).toBe('<|im_end|>');
    const mistral = await realTokenizer('llama2');
    expect(mistral.kind).toBe('sentencepiece');
    expect(mistral.tokenString(mistral.bosTokenId!)).toBe('<s>');
    expect(mistral.tokenString(mistral.eosTokenIds[0]!)).toBe('</s>');
    expect(mistral.encode('hi', { addSpecialTokens: true })[0]).toBe(mistral.bosTokenId);
    expect(mistral.dummyPrefixBytes('hi')).toBe(1);
  });

  it('maps byte-level and byte-fallback tokens to real bytes', async () => {
    const qwen = await realTokenizer('qwen3');
    const space = qwen.tokenToId('Ġthe')!;
    expect(Buffer.from(qwen.tokenBytes(space)).toString()).toBe(' the');
    const mistral = await realTokenizer('llama2');
    expect([...mistral.tokenBytes(mistral.tokenToId('<0x0A>')!)]).toEqual([10]);
    expect(Buffer.from(mistral.tokenBytes(mistral.tokenToId('▁the')!)).toString()).toBe(' the');
  });

  it('renders chat templates and reports a missing one clearly', async () => {
    const qwen = await realTokenizer('qwen3');
    const prompt = qwen.applyChatTemplate([{ role: 'user', content: 'Hi' }]);
    expect(prompt).toContain('<|im_start|>user\nHi<|im_end|>');
    expect(prompt.endsWith('<|im_start|>assistant\n')).toBe(true);
    const mistral = await realTokenizer('llama2');
    expect(() => mistral.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toThrow(/no chat template.*rawPrompt/);
  });

  it('decodes what it encodes', async () => {
    for (const name of ['qwen3', 'llama2', 'llama3', 'gemma3'] as const) {
      const tok = await realTokenizer(name);
      const text = 'Hello, wörld! 12345 日本 🎉';
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });
});

describe('literal U+2581 in sentencepiece text', () => {
  it('keeps every token boundary exact (the character comes back as a space in the token stream)', async () => {
    const tok = await realTokenizer('llama2');
    const text = 'hello \u2581\u2581 world';
    const { ids, starts, ends } = tok.offsets(text);
    const spans = ids.map((id, i) => [tok.tokenString(id), starts[i], ends[i]]);
    expect(spans).toEqual([['▁hell', 0, 4], ['o', 4, 5], ['▁▁▁', 5, 12], ['▁world', 12, 18]]);
    // A dummy-prefix token is the only zero-width one.
    const lead = tok.offsets('\u2581start');
    expect(lead.ids.map((id, i) => [tok.tokenString(id), lead.starts[i], lead.ends[i]])).toEqual([['▁', 0, 0], ['▁start', 0, 8]]);
  });
});
