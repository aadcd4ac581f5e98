import { extractAnswer, problemSet, wordProblems } from '../../src/demo/wordProblems';

describe('the demo word-problem task', () => {
  it('is deterministic for a seed and solves its own problems', () => {
    const a = problemSet(50);
    expect(problemSet(50)).toEqual(a);
    for (const p of a) {
      expect(extractAnswer(p.solution)).toBe(p.answer);
      // Re-check every step of the worked solution.
      for (const [, x, op, y, z] of p.solution.matchAll(/(\d+) ([+-]) (\d+) = (\d+)/g)) {
        expect(op === '+' ? Number(x) + Number(y) : Number(x) - Number(y)).toBe(Number(z));
      }
      expect(p.answer).toBeGreaterThanOrEqual(0);
      expect(p.question).toMatch(/How many \w+ does (she|he) have now\?$/);
    }
  });

  it('keeps the train and test splits disjoint', () => {
    const test = new Set(problemSet(300).map((p) => p.question));
    let n = 0;
    for (const p of wordProblems({ split: 'train', seed: 11, addProbability: 0.9, steps: [1, 4] })) {
      expect(test.has(p.question)).toBe(false);
      if (++n >= 3000) break;
    }
  });

  it('skews the operations by the mixture', () => {
    const adds = problemSet(200, { split: 'train', seed: 3, addProbability: 0.9 }).flatMap((p) => p.ops);
    expect(adds.filter((o) => o === '+').length / adds.length).toBeGreaterThan(0.8);
  });

  it('extracts the final answer', () => {
    expect(extractAnswer('… she has 62 - 18 = 44. The answer is 44.')).toBe(44);
    expect(extractAnswer('no answer')).toBeNull();
  });
});
