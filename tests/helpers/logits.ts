import type { Vocabulary } from '../../src/research';

/** A logits row where the given vocabulary strings get the given probabilities (the rest ~e^-40). */
export function rowWith(vocab: Vocabulary, probs: Record<string, number>): Float32Array {
  const row = new Float32Array(vocab.size).fill(-40);
  for (const [token, p] of Object.entries(probs)) {
    const id = vocab.tokenizer.tokenToId(token);
    if (id === null) throw new Error(`no token ${token}`);
    row[id] = Math.log(p);
  }
  return row;
}
