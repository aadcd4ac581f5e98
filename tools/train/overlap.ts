/**
 * How much of a held-out problem set a model's training data already contains, measured on the
 * arithmetic rather than the wording: whole problems, prefixes, problems one number away, and
 * single step facts (`a ± b = c`).
 */
import { arithmeticOf, type WordProblem } from '../../src/demo/wordProblems.js';

/** Overlap of a held-out set with a training set. */
export interface Overlap {
  /** Held-out problems. */
  problems: number;
  /** Held-out questions that occur word for word in training. */
  sameQuestion: number;
  /** Held-out problems whose whole arithmetic (start, operations, amounts) occurs in training. */
  sameArithmetic: number;
  /** Held-out problems that extend a training problem or are extended by one (shared opening steps). */
  sharedPrefix: number;
  /** Held-out problems with a training problem of the same operations that differs in exactly one number. */
  withinOneNumber: number;
  /** Step facts of the held-out solutions. */
  stepFacts: number;
  /** Of those, facts that also occur as a step in training. */
  stepFactsSeen: number;
}

function numbersOf(p: WordProblem): number[] {
  return [p.start, ...p.amounts];
}

/** The problem's arithmetic with number `j` replaced by a wildcard. */
function wildcard(p: WordProblem, j: number): string {
  const nums = numbersOf(p).map((n, i) => (i === j ? '*' : String(n)));
  return nums[0] + p.ops.map((op, i) => op + nums[i + 1]).join('');
}

function stepFacts(p: WordProblem): string[] {
  const facts: string[] = [];
  let total = p.start;
  p.ops.forEach((op, i) => {
    const next = op === '+' ? total + p.amounts[i]! : total - p.amounts[i]!;
    facts.push(`${total}${op}${p.amounts[i]}=${next}`);
    total = next;
  });
  return facts;
}

/** Measures the overlap of `heldOut` with `training`. */
export function overlapOf(training: Iterable<WordProblem>, heldOut: readonly WordProblem[]): Overlap {
  const questions = new Set<string>();
  const prefixes = new Set<string>();
  const whole = new Set<string>();
  const nearby = new Set<string>();
  const facts = new Set<string>();
  for (const p of training) {
    questions.add(p.question);
    whole.add(arithmeticOf(p));
    for (let k = 1; k <= p.ops.length; k++) prefixes.add(arithmeticOf(p, k));
    for (let j = 0; j <= p.ops.length; j++) nearby.add(wildcard(p, j));
    for (const f of stepFacts(p)) facts.add(f);
  }
  const o: Overlap = { problems: heldOut.length, sameQuestion: 0, sameArithmetic: 0, sharedPrefix: 0, withinOneNumber: 0, stepFacts: 0, stepFactsSeen: 0 };
  for (const p of heldOut) {
    if (questions.has(p.question)) o.sameQuestion++;
    if (whole.has(arithmeticOf(p))) o.sameArithmetic++;
    let prefix = prefixes.has(arithmeticOf(p));
    for (let k = 1; k < p.ops.length && !prefix; k++) prefix = whole.has(arithmeticOf(p, k));
    if (prefix) o.sharedPrefix++;
    let near = false;
    for (let j = 0; j <= p.ops.length && !near; j++) near = nearby.has(wildcard(p, j));
    if (near) o.withinOneNumber++;
    for (const f of stepFacts(p)) {
      o.stepFacts++;
      if (facts.has(f)) o.stepFactsSeen++;
    }
  }
  return o;
}

/** One Markdown table row of an overlap (percentages of the held-out set). */
export function overlapRow(label: string, o: Overlap): string {
  const pct = (n: number, of = o.problems) => `${n} (${((100 * n) / of).toFixed(1)}%)`;
  return `| ${label} | ${o.problems} | ${pct(o.sameQuestion)} | ${pct(o.sameArithmetic)} | ${pct(o.sharedPrefix)} | ${pct(o.withinOneNumber)} | ${((100 * o.stepFactsSeen) / o.stepFacts).toFixed(1)}% of ${o.stepFacts} |`;
}

/** The header of the overlap table. */
export const OVERLAP_HEADER = '| training data | held-out problems | same question | same arithmetic | shared opening steps | within one number | step facts seen in training |\n|---|---:|---:|---:|---:|---:|---:|';
