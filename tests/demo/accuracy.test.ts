import { SafeEnsemble } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { extractAnswer, problemSet } from '../../src/demo/wordProblems';

describe('SAFE on the bundled demo models', () => {
  it('answers 20 held-out problems at least as accurately as the drafter alone', async () => {
    const ensemble = await SafeEnsemble.load({ models: bundledModels() });
    const problems = problemSet(20);
    let drafter = 0;
    let safe = 0;
    let ensembled = 0;
    let tokens = 0;
    for (const p of problems) {
      if (extractAnswer((await ensemble.generate(p.question, { strategy: 'single' })).text) === p.answer) drafter++;
      const r = await ensemble.generate(p.question);
      if (extractAnswer(r.text) === p.answer) safe++;
      ensembled += r.stats.ensembledTokens;
      tokens += r.stats.generatedTokens;
    }
    await ensemble.dispose();
    expect(safe).toBeGreaterThanOrEqual(drafter);
    expect(ensembled / tokens).toBeLessThan(0.2); // SAFE ensembles a minority of tokens
  });
});
