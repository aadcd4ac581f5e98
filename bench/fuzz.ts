/**
 * Hostile-text fuzzing at scale: the properties of tests/reliability/hostileText.ts (which Jest
 * runs a few hundred times) run here `--runs` times per property and tokenizer.
 *
 *   npx tsx bench/fuzz.ts [--runs 1000] [--seed 1]
 *
 * Prints the number of cases run and exits 1 with the shrunk counterexample on any failure.
 */
import fc from 'fast-check';
import { parseArgs } from 'node:util';
import { hostileText, loadTokenizers, offsetsReassemble, specialLookalikes, specialStringsStayText, streamAndGate, TOKENIZERS } from '../tests/reliability/hostileText.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '1000' }, seed: { type: 'string', default: '1' } } });
const runs = Number(values.runs);
const seed = Number(values.seed);
const toks = await loadTokenizers();
const text = hostileText(specialLookalikes(toks));
let cases = 0;
const started = Date.now();
for (const name of TOKENIZERS) {
  const tok = toks[name];
  const drafter = toks[name === 'qwen3' ? 'llama2' : 'qwen3'];
  const properties: Array<[string, fc.IProperty<never>]> = [
    ['offsets reassemble', fc.property(text, (t) => offsetsReassemble(tok, t)) as never],
    ['stream + stability gate', fc.property(text, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), (t, cuts) => streamAndGate(drafter, tok, t, cuts)) as never],
    ['special strings stay text', fc.property(text, (t) => specialStringsStayText(tok, t)) as never],
  ];
  for (const [label, property] of properties) {
    const t0 = Date.now();
    const details = fc.check(property, { numRuns: runs, seed });
    cases += details.numRuns;
    if (details.failed) {
      console.error(`${name} / ${label}: FAILED after ${details.numRuns} cases; counterexample ${JSON.stringify(details.counterexample)}: ${String(details.errorInstance)}`);
      process.exit(1);
    }
    console.log(`${name.padEnd(7)} ${label.padEnd(26)} ${details.numRuns} cases passed (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
}
console.log(`fuzz: ${cases} cases passed on ${TOKENIZERS.length} tokenizers in ${((Date.now() - started) / 1000).toFixed(0)} s (seed ${seed})`);
