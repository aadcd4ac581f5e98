/**
 * `npm run bench:overlap`: how much of the benchmark's held-out set each bundled model's
 * training data contains (tools/train/overlap.ts), for the README and the model cards; and,
 * for comparison, the same measures under the split used before 2026-12-01 (a hash of the
 * question text), which kept only exact questions apart.
 */
import { parseArgs } from 'node:util';
import { drawnProblems, problemSet, type WordProblem } from '../src/demo/wordProblems.js';
import { DEMO_MODELS } from '../tools/train/demoModels.js';
import { trainingItems } from '../tools/train/prepare.js';
import { OVERLAP_HEADER, overlapOf, overlapRow } from '../tools/train/overlap.js';

const { values } = parseArgs({ options: { problems: { type: 'string', default: '300' } } });
const count = Number(values.problems);
const heldOut = problemSet(count);
console.log(`Overlap of the ${heldOut.length} benchmark problems (problemSet(${heldOut.length}), split by opening arithmetic) with each model's training problems\n`);
console.log(OVERLAP_HEADER);
const sizes = new Map<string, number>();
for (const model of DEMO_MODELS) {
  const training: WordProblem[] = [];
  for (const item of trainingItems(model.mix)) if (item.kind === 'problem') training.push(item.problem);
  sizes.set(model.name, training.length);
  console.log(overlapRow(`${model.name} (${training.length.toLocaleString('en')} problems)`, overlapOf(training, heldOut)));
}

/** The previous rule: FNV-1a of the question text, one in eight to the test split. */
function previousSplit(question: string): 'train' | 'test' {
  let h = 0x811c9dc5;
  for (let i = 0; i < question.length; i++) h = Math.imul(h ^ question.charCodeAt(i), 16777619) >>> 0;
  return h % 8 === 0 ? 'test' : 'train';
}
function firstOfSplit(options: Parameters<typeof drawnProblems>[0], split: 'train' | 'test', n: number): WordProblem[] {
  const out: WordProblem[] = [];
  for (const p of drawnProblems(options)) {
    if (previousSplit(p.question) === split) out.push(p);
    if (out.length >= n) break;
  }
  return out;
}
const previousHeldOut = firstOfSplit({ seed: 2026 }, 'test', count);
console.log(`\nThe same under the previous split (a hash of the question text), as the previous bundled models were trained and tested\n`);
console.log(OVERLAP_HEADER);
for (const model of DEMO_MODELS.slice(0, 2)) {
  const training = firstOfSplit({ seed: model.mix.seed, addProbability: model.mix.addProbability, steps: [1, 3] }, 'train', sizes.get(model.name)!);
  console.log(overlapRow(`${model.name} (previous split)`, overlapOf(training, previousHeldOut)));
}
