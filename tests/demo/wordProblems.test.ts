import { arithmeticOf, extractAnswer, problemSet, splitOf, wordProblems, type WordProblem } from '../../src/demo/wordProblems';
import { overlapOf } from '../../tools/train/overlap';

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

  it('splits by arithmetic: no held-out problem repeats or extends a training one, whatever its wording', () => {
    const heldOut = problemSet(300);
    const training: WordProblem[] = [];
    for (const p of wordProblems({ split: 'train', seed: 11, addProbability: 0.9, steps: [1, 4] })) {
      training.push(p);
      if (training.length >= 20000) break;
    }
    const o = overlapOf(training, heldOut);
    expect([o.sameQuestion, o.sameArithmetic, o.sharedPrefix]).toEqual([0, 0, 0]);
    // The opening decides: the same numbers with another name and object stay in one split.
    const p = heldOut[0]!;
    expect(splitOf({ ...p, ops: [p.ops[0]!, '-'], amounts: [p.amounts[0]!, 1] })).toBe('test');
    expect(arithmeticOf(p)).toBe(p.start + p.ops.map((op, i) => op + p.amounts[i]).join(''));
  });

  it('measures the overlap that remains: problems one number away and step facts', () => {
    const base = problemSet(1)[0]!;
    const near: WordProblem = { ...base, question: 'other wording', start: base.start + 1 };
    const o = overlapOf([near], [base]);
    expect(o).toMatchObject({ sameArithmetic: 0, sharedPrefix: 0, withinOneNumber: 1, stepFacts: base.ops.length });
    expect(overlapOf([base], [base])).toMatchObject({ sameQuestion: 1, sameArithmetic: 1, sharedPrefix: 1, stepFactsSeen: base.ops.length });
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
