import { TextTokenizer } from '../../src/research';
import { tokenizerDir, type FixtureTokenizer } from '../../tools/fixtures/tinyDecoder';

const cache = new Map<FixtureTokenizer, Promise<TextTokenizer>>();

/** Loads one of the real npm tokenizers once per test file. */
export function realTokenizer(name: FixtureTokenizer): Promise<TextTokenizer> {
  let t = cache.get(name);
  if (!t) {
    t = TextTokenizer.fromFolder(tokenizerDir(name));
    cache.set(name, t);
  }
  return t;
}

export const ALL_TOKENIZERS: FixtureTokenizer[] = ['qwen3', 'llama2', 'llama3', 'gemma3'];
