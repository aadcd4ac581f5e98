/**
 * `npm run bench:overlap`: how much of the benchmark's held-out set each bundled model's
 * training data contains (tools/train/overlap.ts), for the README and the model cards.
 */
import { parseArgs } from 'node:util';
import { problemSet, type WordProblem } from '../src/demo/wordProblems.js';
import { DEMO_MODELS } from '../tools/train/demoModels.js';
import { trainingItems } from '../tools/train/prepare.js';
import { OVERLAP_HEADER, overlapOf, overlapRow } from '../tools/train/overlap.js';

const { values } = parseArgs({ options: { problems: { type: 'string', default: '300' } } });
const heldOut = problemSet(Number(values.problems));
console.log(`Overlap of the ${heldOut.length} benchmark problems (problemSet(${heldOut.length}), split by opening arithmetic) with each model's training problems\n`);
console.log(OVERLAP_HEADER);
for (const model of DEMO_MODELS) {
  const training: WordProblem[] = [];
  for (const item of trainingItems(model.mix)) if (item.kind === 'problem') training.push(item.problem);
  console.log(overlapRow(`${model.name} (${training.length.toLocaleString('en')} problems)`, overlapOf(training, heldOut)));
}
