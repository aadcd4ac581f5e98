/**
 * Looking a token up by its bytes through the tokenizer's own string → id table (what UniTE's
 * fill-in and the ensemble's appended ids use) gives, for every id of the four real
 * vocabularies, what a full scan of the vocabulary gives: the ordinary entry with those bytes
 * if there is one, else a byte-fallback or special token.
 */
import { Vocabulary, bytesKey, type TextTokenizer } from '../../src/research';
import { ALL_TOKENIZERS, realTokenizer } from '../helpers/tokenizers';

/** The reference: one pass over the vocabulary, lowest ordinary id per byte string. */
function scanIndex(tok: TextTokenizer): Map<string, number> {
  const map = new Map<string, number>();
  const weak = (id: number) => tok.isSpecial(id) || /^<0x[0-9A-Fa-f]{2}>$/.test(tok.tokenString(id));
  for (let id = 0; id < tok.vocabSize; id++) {
    let key: string;
    try {
      key = bytesKey(tok.tokenBytes(id));
    } catch {
      continue;
    }
    if (key === '' || tok.isEos(id)) continue;
    const prev = map.get(key);
    if (prev === undefined || (weak(prev) && !weak(id))) map.set(key, id);
  }
  return map;
}

describe.each(ALL_TOKENIZERS)('idOfBytes with the %s tokenizer', (name) => {
  it('agrees with a full vocabulary scan for every token', async () => {
    const tok = await realTokenizer(name);
    const reference = scanIndex(tok);
    const vocab = Vocabulary.of(tok);
    const disagreements: string[] = [];
    for (const [key, id] of reference) {
      const direct = vocab.idOf(key);
      if (direct !== id) disagreements.push(`${JSON.stringify(key)}: scan ${id} (${tok.tokenString(id)}), direct ${direct}`);
    }
    expect(disagreements.slice(0, 5)).toEqual([]);
    expect(reference.size).toBeGreaterThan(1000);
  });

  it('finds nothing for bytes no single token has', async () => {
    const tok = await realTokenizer(name);
    expect(tok.idOfBytes(new TextEncoder().encode('photosynthesis-and-more-than-one-token'))).toBeNull();
    expect(tok.idOfBytes(new Uint8Array(0))).toBeNull();
    expect(Vocabulary.of(tok).idOf(bytesKey(Uint8Array.of(0xe2, 0x96)))).toBe(scanIndex(tok).get(bytesKey(Uint8Array.of(0xe2, 0x96))) ?? null);
  });
});
