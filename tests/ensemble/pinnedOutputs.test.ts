/**
 * Outputs pinned before the engine refactor (issue 24): SAFE with UniTE and with GaC, every-token,
 * GaC-threshold, single and seeded sampled SAFE on the bundled models — texts, statistics (less
 * timings and the timing-dependent pipeline counts) and traces — must stay what they were when
 * recorded (traces by digest). `PIN_RECORD=1 npx jest tests/ensemble/pinnedOutputs.test.ts --selectProjects worker`
 * rewrites the record (only when a change of output is intended, and said so).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafeEnsemble, type EnsembleOptions } from '../../src/index';
import { bundledModels, packageRoot } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';
import { comparable } from '../helpers/results';

const RECORD = join(__dirname, 'pinned', 'outputs.json');
const CASES: Array<[string, EnsembleOptions]> = [
  ['safe + unite', {}],
  ['safe + gac', { baseEnsembler: 'gac' }],
  ['every-token', { strategy: 'every-token' }],
  ['gac-threshold', { strategy: 'gac-threshold' }],
  ['single', { strategy: 'single' }],
  ['safe sampled (residual)', { temperature: 0.8, topP: 0.95, seed: 7 }],
  ['safe sampled (paper rule)', { temperature: 0.8, topK: 20, seed: 8, rejectionRule: 'ensemble' }],
];
const QUESTIONS = problemSet(3).map((p) => p.question);

/** JSON with object keys sorted, so that the digest does not depend on the order fields are set in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

describe('outputs pinned before the engine refactor', () => {
  let ensemble: SafeEnsemble;
  const produced: Record<string, unknown> = {};
  const recorded = process.env.PIN_RECORD === '1' ? null : (JSON.parse(readFileSync(RECORD, 'utf8')) as Record<string, unknown>);

  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: bundledModels() });
  });
  afterAll(async () => {
    await ensemble.dispose();
    if (!recorded) writeFileSync(RECORD, `${JSON.stringify(produced, null, 1)}\n`);
  });

  it.each(CASES)('%s', async (name, options) => {
    const results = [];
    for (const q of QUESTIONS) {
      const { trace, ...rest } = comparable(await ensemble.generate(q, { ...options, trace: true })) as { trace: unknown[] };
      // The trace (megabytes over all cases) is pinned by its digest, the models' folders (their
      // names in the trace) relative to the package; texts and statistics as they are.
      const json = canonical(trace).split(packageRoot()).join('<package>');
      results.push({ ...rest, traceRecords: trace.length, traceSha256: createHash('sha256').update(json).digest('hex') });
    }
    produced[name] = JSON.parse(JSON.stringify(results));
    if (recorded) expect(produced[name]).toEqual(recorded[name]);
  });
});
