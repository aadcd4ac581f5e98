import { seededRandom } from './random.js';

/**
 * The demo task: seeded multi-step arithmetic word problems with step-by-step solutions that
 * end in a fixed answer line. Train and held-out problems never share their arithmetic: the split
 * of a problem is decided by its opening arithmetic (start count, first operation and amount), not
 * its wording, so no held-out problem repeats a training problem's numbers, nor extends one (a
 * one-step training problem cannot be the first step of a held-out one).
 * @module
 */

/** One word problem with its worked solution. */
export interface WordProblem {
  /** The question, e.g. "Mia has 37 marbles. She finds 25 more, then gives away 18. How many marbles does she have now?" */
  question: string;
  /** The step-by-step solution, ending with "The answer is N." */
  solution: string;
  /** The final number. */
  answer: number;
  /** The operation of each step. */
  ops: Array<'+' | '-'>;
  /** The count the problem starts from. */
  start: number;
  /** The amount added or taken away at each step. */
  amounts: number[];
}

/** Which problems to draw. */
export interface ProblemOptions {
  /** `train` or `test`: disjoint by construction. */
  split: 'train' | 'test';
  /** Seed of the sequence. */
  seed: number;
  /** Probability that a step adds (default 0.5); the rest subtract. */
  addProbability?: number;
  /** Smallest and largest number of steps (default 2..3). */
  steps?: [number, number];
}

// Names chosen so that tokenizers disagree on them: Qwen3 keeps most whole, the Mistral
// vocabulary splits many (▁N|ora, ▁M|ia, ▁X|iom|ara).
const NAMES = ['Mia', 'Nora', 'Liam', 'Sofia', 'Omar', 'Xiomara', 'Bartholomew', 'Ingrid', 'Yusuf', 'Priya', 'Mateo', 'Zuzanna', 'Kwame', 'Leilani', 'Anders', 'Ngozi', 'Tobias', 'Esperanza', 'Hiroshi', 'Fatima'];
const PRONOUNS: Record<string, 'She' | 'He'> = {
  Mia: 'She', Nora: 'She', Liam: 'He', Sofia: 'She', Omar: 'He', Xiomara: 'She', Bartholomew: 'He', Ingrid: 'She', Yusuf: 'He', Priya: 'She',
  Mateo: 'He', Zuzanna: 'She', Kwame: 'He', Leilani: 'She', Anders: 'He', Ngozi: 'She', Tobias: 'He', Esperanza: 'She', Hiroshi: 'He', Fatima: 'She',
};
const OBJECTS = ['marbles', 'stickers', 'seashells', 'apples', 'pencils', 'coins', 'postcards', 'acorns', 'tangerines', 'notebooks', 'buttons', 'crayons'];
/** [question verb phrase, solution participle] for additions and subtractions. */
const ADD: Array<[string, string]> = [['finds {n} more', 'finding {n} more'], ['buys {n} more', 'buying {n} more'], ['gets {n} more', 'getting {n} more'], ['receives {n} more', 'receiving {n} more']];
const SUB: Array<[string, string]> = [['gives away {n}', 'giving away {n}'], ['loses {n}', 'losing {n}'], ['sells {n}', 'selling {n}'], ['uses {n}', 'using {n}']];

/** Largest count a problem ever reaches. */
const MAX_COUNT = 99;

/** The arithmetic of a problem without its wording, e.g. `37+25-18`. */
export function arithmeticOf(problem: Pick<WordProblem, 'start' | 'ops' | 'amounts'>, steps = problem.ops.length): string {
  let key = String(problem.start);
  for (let i = 0; i < steps; i++) key += `${problem.ops[i]}${problem.amounts[i]}`;
  return key;
}

/**
 * The split of a problem: an FNV-1a hash of its opening arithmetic (start, first operation and
 * amount) puts one opening in eight in the test split. Every problem begins with its opening, so
 * train and test share no whole problem and no prefix of one, whatever the names and verbs.
 */
export function splitOf(problem: Pick<WordProblem, 'start' | 'ops' | 'amounts'>): 'train' | 'test' {
  const opening = arithmeticOf(problem, 1);
  let h = 0x811c9dc5;
  for (let i = 0; i < opening.length; i++) h = Math.imul(h ^ opening.charCodeAt(i), 16777619) >>> 0;
  return h % 8 === 0 ? 'test' : 'train';
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function int(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** Builds one problem from the generator's random stream (any split). */
function draw(rand: () => number, addProbability: number, steps: [number, number]): WordProblem {
  const name = pick(rand, NAMES);
  const pronoun = PRONOUNS[name]!;
  const object = pick(rand, OBJECTS);
  let total = int(rand, 10, 99);
  const start = total;
  const n = int(rand, steps[0], steps[1]);
  const questionSteps: string[] = [];
  const solutionSteps: string[] = [];
  const ops: Array<'+' | '-'> = [];
  const amounts: number[] = [];
  for (let i = 0; i < n; i++) {
    // Every count stays within 0..MAX_COUNT: two-digit arithmetic at every step.
    const add = total < MAX_COUNT && (rand() < addProbability || total < 5);
    const amount = add ? int(rand, 1, MAX_COUNT - total) : int(rand, 1, total);
    const [verb, participle] = pick(rand, add ? ADD : SUB);
    const next = add ? total + amount : total - amount;
    questionSteps.push(verb.replace('{n}', String(amount)));
    solutionSteps.push(`After ${participle.replace('{n}', String(amount))} ${pronoun.toLowerCase()} has ${total} ${add ? '+' : '-'} ${amount} = ${next}.`);
    ops.push(add ? '+' : '-');
    amounts.push(amount);
    total = next;
  }
  const joined = questionSteps.length === 1 ? questionSteps[0]! : `${questionSteps.slice(0, -1).join(', ')}, then ${questionSteps[questionSteps.length - 1]}`;
  const question = `${name} has ${start} ${object}. ${pronoun} ${joined}. How many ${object} does ${pronoun.toLowerCase()} have now?`;
  const solution = `${name} starts with ${start} ${object}. ${solutionSteps.join(' ')} The answer is ${total}.`;
  return { question, solution, answer: total, ops, start, amounts };
}

/** The generator's endless stream before the split: every problem it draws for these options. */
export function* drawnProblems(options: Omit<ProblemOptions, 'split'>): Generator<WordProblem> {
  const rand = seededRandom(options.seed);
  const p = options.addProbability ?? 0.5;
  const steps = options.steps ?? [2, 3];
  for (;;) yield draw(rand, p, steps);
}

/** An endless, seeded stream of problems of one split. */
export function* wordProblems(options: ProblemOptions): Generator<WordProblem> {
  for (const problem of drawnProblems(options)) if (splitOf(problem) === options.split) yield problem;
}

/** The first `count` problems of a split (the fixed held-out set uses seed 2026). */
export function problemSet(count: number, options: ProblemOptions = { split: 'test', seed: 2026 }): WordProblem[] {
  const out: WordProblem[] = [];
  for (const p of wordProblems(options)) {
    out.push(p);
    if (out.length >= count) break;
  }
  return out;
}

/** The number after "The answer is" in a generated solution, or null. */
export function extractAnswer(text: string): number | null {
  const m = /The answer is (-?\d+)/.exec(text);
  return m ? Number(m[1]) : null;
}
