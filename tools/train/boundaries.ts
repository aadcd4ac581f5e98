/**
 * Measures how differently the candidate tokenizers split the demo task's text, to choose a
 * third bundled model whose tokenizer disagrees with the others (issue: show every-token
 * ensembling asking a model for distributions in the middle of its own tokens).
 *
 *   npx tsx tools/train/boundaries.ts [--problems 200]
 *
 * For each ordered pair (A drafts, B verifies) it reports the share of A's token ends in the
 * solutions that are not token ends of B: at those positions SAFE's stability gate defers and
 * every-token ensembling has to ensemble inside one of B's tokens.
 */
import { parseArgs } from 'node:util';
import { TextTokenizer } from '../../src/text/tokenizer.js';
import { problemSet } from '../../src/demo/wordProblems.js';
import { tokenizerDir, type FixtureTokenizer } from '../fixtures/tinyDecoder.js';

const { values } = parseArgs({ options: { problems: { type: 'string', default: '200' } } });
const names: FixtureTokenizer[] = ['qwen3', 'llama2', 'llama3', 'gemma3'];
const label: Record<FixtureTokenizer, string> = { qwen3: 'Qwen3', llama2: 'Mistral 32k', llama3: 'Llama 3', gemma3: 'Gemma 3', gemini: 'Gemma' };
const tokenizers = await Promise.all(names.map((n) => TextTokenizer.fromFolder(tokenizerDir(n))));
const texts = problemSet(Number(values.problems)).map((p) => p.solution);

/** Token end offsets of each text (in its UTF-8 bytes). */
const ends = tokenizers.map((tok) => texts.map((t) => new Set(tok.offsets(t).ends)));
const tokens = ends.map((perText) => perText.reduce((n, s) => n + s.size, 0));
const digitTokens = tokenizers.map((tok) => {
  let multi = 0;
  let all = 0;
  for (const t of texts) {
    const o = tok.offsets(t);
    for (let i = 0; i < o.ids.length; i++) {
      const piece = Buffer.from(o.bytes.subarray(o.starts[i]!, o.ends[i]!)).toString('utf8').trim();
      if (/^\d+$/.test(piece)) {
        all++;
        if (piece.length > 1) multi++;
      }
    }
  }
  return { multi, all };
});

console.log(`${texts.length} held-out solutions\n`);
console.log('| tokenizer | vocabulary | tokens | tokens per solution | number tokens with 2+ digits |\n|---|---:|---:|---:|---:|');
names.forEach((n, i) => console.log(`| ${label[n]} | ${tokenizers[i]!.vocabSize.toLocaleString('en')} | ${tokens[i]} | ${(tokens[i]! / texts.length).toFixed(1)} | ${((100 * digitTokens[i]!.multi) / Math.max(1, digitTokens[i]!.all)).toFixed(1)}% |`));
console.log('\nShare of the drafter\'s token ends that fall inside a verifier token (rows draft, columns verify):\n');
console.log(`| drafts \\ verifies | ${names.map((n) => label[n]).join(' | ')} |\n|---|${names.map(() => '---:').join('|')}|`);
for (let a = 0; a < names.length; a++) {
  const cells = names.map((_, b) => {
    if (a === b) return '—';
    let inside = 0;
    texts.forEach((_, t) => {
      for (const e of ends[a]![t]!) if (!ends[b]![t]!.has(e)) inside++;
    });
    return `${((100 * inside) / tokens[a]!).toFixed(1)}%`;
  });
  console.log(`| ${label[names[a]!]} | ${cells.join(' | ')} |`);
}
