/**
 * The structured-output part of `safe-ensemble bench`: the same held-out problems asked with a
 * JSON Schema as the response format, for single models and SAFE. Reports how many outputs parse
 * and validate (checked here by hand, not by the grammar that produced them) and how many carry
 * the right answer, beside the same method's free-text accuracy on the same problems.
 * @module
 */
import { SafeEnsemble } from '../ensemble/safeEnsemble.js';
import type { EnsembleOptions } from '../ensemble/options.js';
import type { WordProblem } from '../demo/wordProblems.js';

/** A response format the benchmark asks for, and its hand-written validator. */
interface StructuredFormat {
  id: string;
  /** How the README and the table name it. */
  label: string;
  schema: Record<string, unknown>;
  /** The keys and the JSON types their values must have, in order. */
  fields: ReadonlyArray<[string, 'number' | 'string']>;
}

/** The two formats: the answer alone, and reasoning written before the answer. */
export const STRUCTURED_FORMATS: readonly StructuredFormat[] = [
  {
    id: 'answer',
    label: '{ "answer": number }',
    schema: { type: 'object', properties: { answer: { type: 'number' } }, required: ['answer'], additionalProperties: false },
    fields: [['answer', 'number']],
  },
  {
    id: 'reasoning-answer',
    label: '{ "reasoning": string, "answer": number }',
    schema: { type: 'object', properties: { reasoning: { type: 'string' }, answer: { type: 'number' } }, required: ['reasoning', 'answer'], additionalProperties: false },
    fields: [['reasoning', 'string'], ['answer', 'number']],
  },
];

/** The methods asked for structured output (ids of the benchmark's method list). */
export const STRUCTURED_METHODS = ['single', 'safe'] as const;

/** What one output was: valid JSON of the format, and its answer (null when invalid). */
export function checkStructured(text: string, format: StructuredFormat): { valid: boolean; answer: number | null } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { valid: false, answer: null };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { valid: false, answer: null };
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length !== format.fields.length || format.fields.some(([key, type]) => typeof record[key] !== type)) return { valid: false, answer: null };
  const answer = record.answer as number;
  return { valid: Number.isFinite(answer), answer: Number.isFinite(answer) ? answer : null };
}

/** One structured-output row of the benchmark. */
export interface StructuredRow {
  method: string;
  drafter: string;
  format: string;
  /** Outputs that parse and validate against the format. */
  valid: number;
  /** Outputs whose answer is the problem's. */
  correct: number;
  /** The same method's free-text correct answers on the same generations. */
  freeTextCorrect: number;
  problems: number;
  /** Mean generated tokens per output. */
  meanTokens: number;
}

/** One generation to run: a problem, its free-text result and the options the free text used. */
export interface StructuredItem {
  problem: WordProblem;
  options: EnsembleOptions;
  freeTextCorrect: boolean;
}

/**
 * Runs every format on every item with one ensemble; `methodName` names a method id, `tick`
 * counts generations. Returns one row per method and format.
 */
export async function runStructured(
  ensemble: SafeEnsemble,
  drafter: string,
  itemsByMethod: ReadonlyMap<string, readonly StructuredItem[]>,
  methodName: (id: string) => string,
  maxNewTokens: number,
  tick: () => void,
): Promise<StructuredRow[]> {
  const rows: StructuredRow[] = [];
  for (const [id, items] of itemsByMethod) {
    for (const format of STRUCTURED_FORMATS) {
      const row: StructuredRow = { method: methodName(id), drafter, format: format.label, valid: 0, correct: 0, freeTextCorrect: 0, problems: items.length, meanTokens: 0 };
      let tokens = 0;
      for (const item of items) {
        const r = await ensemble.generate(item.problem.question, { ...item.options, maxNewTokens, responseFormat: format.schema });
        const checked = checkStructured(r.text, format);
        if (checked.valid) row.valid++;
        if (checked.answer === item.problem.answer) row.correct++;
        if (item.freeTextCorrect) row.freeTextCorrect++;
        tokens += r.stats.generatedTokens;
        tick();
      }
      row.meanTokens = items.length ? tokens / items.length : 0;
      rows.push(row);
    }
  }
  return rows;
}

/** The markdown table of the structured rows. */
export function structuredTable(rows: readonly StructuredRow[]): string {
  const pct = (n: number, of: number) => `${of ? ((100 * n) / of).toFixed(1) : '0.0'}%`;
  let out = '| method | drafter | response format | valid | accuracy | free-text accuracy (same problems) | tokens per output |\n|---|---|---|---:|---:|---:|---:|\n';
  for (const r of rows) out += `| ${r.method} | ${r.drafter} | \`${r.format}\` | ${pct(r.valid, r.problems)} | ${pct(r.correct, r.problems)} | ${pct(r.freeTextCorrect, r.problems)} | ${r.meanTokens.toFixed(1)} |\n`;
  return out;
}
