import { SafeEnsemble } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { extractAnswer, problemSet } from '../../src/demo/wordProblems';
import { namesSomeoneElse } from '../../src/cli/benchMethod';

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
    expect(ensembled / tokens).toBeLessThan(0.05); // SAFE ensembles only a few percent of tokens
  });

  it("with the Mistral model drafting, its dummy-prefix space is not part of the text the Qwen verifier scores", async () => {
    // Problem 8 starts "Xiomara": Mistral drafts "▁X|iom|ara", Qwen writes the name with no leading
    // space after its "assistant" line. Scored with the space, Qwen once pulled such names apart
    // ("Barrayons" for "Bartholomew").
    const ensemble = await SafeEnsemble.load({ models: bundledModels(), drafter: 1 });
    const p = problemSet(20)[8]!;
    const r = await ensemble.generate(p.question, { trace: true });
    await ensemble.dispose();
    expect(r.text).toMatch(/^Xiomara starts with \d+ pencils\./);
    expect(r.trace!.filter((t) => t.tokenIndex === 0)).toEqual([]);
    expect(extractAnswer(r.text)).toBe(p.answer);
  });

  it.each([0, 1])('with either model drafting (%i), outputs never start with a space, and SAFE names no one else', async (drafter) => {
    const ensemble = await SafeEnsemble.load({ models: bundledModels(), drafter });
    const bad: string[] = [];
    for (const p of problemSet(20)) {
      for (const strategy of ['safe', 'every-token'] as const) {
        const r = await ensemble.generate(p.question, { strategy, maxNewTokens: 120 });
        // Every-token ensembling may still garble a name mid-word (the paper's failure; the
        // benchmark counts it): only SAFE is held to naming no one else.
        if (/^\s/.test(r.text) || (strategy === 'safe' && namesSomeoneElse(r.text, p.question))) bad.push(`${strategy}: ${JSON.stringify(r.text.slice(0, 40))}`);
      }
    }
    await ensemble.dispose();
    expect(bad).toEqual([]);
  });
});
