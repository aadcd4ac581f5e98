/**
 * `safe-ensemble bench`: the paper's finding in miniature on the bundled models: accuracy,
 * E/T and speed of every single model, every-token UniTE, thresholded GaC, SAFE with UniTE and
 * GaC, and the sharpening ablation, with each model as the drafter.
 * @module
 */
import { writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { SafeEnsemble } from '../ensemble/safeEnsemble.js';
import type { EnsembleOptions } from '../ensemble/options.js';
import { bundledModels } from '../demo/models.js';
import { extractAnswer, problemSet, type WordProblem } from '../demo/wordProblems.js';
import type { EnsembleResult } from '../ensemble/types.js';
import { parse, positiveInteger, UsageError } from './flags.js';

export const BENCH_HELP = `Usage: safe-ensemble bench [options]

Runs every strategy on held-out word problems with the bundled demo models (or --model DIRs):
each model alone, every-token UniTE, thresholded GaC, SAFE+UniTE, SAFE+GaC, and the sharpening
ablation (none, heuristic λ 0.1/0.2/0.3, geometric), each ensemble with every model drafting.
Speeds are ratios to the same drafter alone, measured in the same run with every method run on
each problem in turn (so machine drift hits all methods alike).

Options:
  --problems N     held-out problems (default 300)
  --model DIR      model folder; repeat (default: the bundled models)
  --max-new-tokens N   per problem (default 160)
  --json           print the rows as JSON instead of a table
  --plot FILE      write an SVG of accuracy against relative speed
  --threads N      onnxruntime threads per model
  -h, --help       this help`;

/** One benchmark row. */
export interface BenchRow {
  method: string;
  drafter: string;
  accuracy: number;
  etPct: number;
  tokensPerSecond: number;
  speedVsDrafter: number;
  correct: number;
  problems: number;
}

const FLAGS = {
  problems: { type: 'string' },
  model: { type: 'string', multiple: true },
  'max-new-tokens': { type: 'string' },
  json: { type: 'boolean' },
  plot: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function rowsFor(): Array<{ method: string; options: EnsembleOptions }> {
  return [
    { method: 'every-token UniTE', options: { strategy: 'every-token' } },
    { method: 'GaC thresholded', options: { strategy: 'gac-threshold' } },
    { method: 'SAFE + UniTE (heuristic λ 0.1)', options: { strategy: 'safe' } },
    { method: 'SAFE + GaC', options: { strategy: 'safe', baseEnsembler: 'gac' } },
    { method: 'SAFE + UniTE, no sharpening', options: { strategy: 'safe', sharpening: { method: 'none' } } },
    { method: 'SAFE + UniTE, heuristic λ 0.2', options: { strategy: 'safe', sharpening: { method: 'heuristic', lambda: 0.2 } } },
    { method: 'SAFE + UniTE, heuristic λ 0.3', options: { strategy: 'safe', sharpening: { method: 'heuristic', lambda: 0.3 } } },
    { method: 'SAFE + UniTE, geometric', options: { strategy: 'safe', sharpening: { method: 'geometric' } } },
  ];
}

/** Running totals of one row. */
class Tally {
  correct = 0;
  tokens = 0;
  ensembled = 0;
  ms = 0;

  add(problem: WordProblem, r: EnsembleResult): void {
    if (extractAnswer(r.text) === problem.answer) this.correct++;
    this.tokens += r.stats.generatedTokens;
    this.ensembled += r.stats.ensembledTokens;
    this.ms += r.stats.time.totalMs;
  }

  get tokensPerSecond(): number {
    return this.tokens / (this.ms / 1000);
  }

  get etPct(): number {
    return this.tokens ? (100 * this.ensembled) / this.tokens : 0;
  }
}

/** An SVG scatter of accuracy against speed relative to the drafter alone. */
export function plotSvg(rows: BenchRow[]): string {
  const W = 760;
  const H = 460;
  const m = { l: 70, r: 230, t: 40, b: 60 };
  const maxX = Math.max(1.1, ...rows.map((r) => r.speedVsDrafter)) * 1.05;
  const x = (v: number) => m.l + (v / maxX) * (W - m.l - m.r);
  const y = (v: number) => H - m.b - v * (H - m.t - m.b);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  const methods = [...new Set(rows.map((r) => r.method))];
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="24" font-size="15">Accuracy vs speed (relative to the drafter alone)</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
  ];
  for (let t = 0; t <= 10; t += 2) parts.push(`<text x="${m.l - 8}" y="${y(t / 10) + 4}" text-anchor="end">${t * 10}%</text><line x1="${m.l}" x2="${W - m.r}" y1="${y(t / 10)}" y2="${y(t / 10)}" stroke="#eee"/>`);
  for (let t = 0; t <= maxX + 1e-9; t += 0.25) parts.push(`<text x="${x(t)}" y="${H - m.b + 18}" text-anchor="middle">${t.toFixed(2)}×</text>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 15}" text-anchor="middle">speed vs drafter-only</text>`);
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">accuracy</text>`);
  rows.forEach((r) => {
    const c = colors[methods.indexOf(r.method) % colors.length];
    const shape = r.drafter.includes('mistral') ? `<rect x="${x(r.speedVsDrafter) - 5}" y="${y(r.accuracy) - 5}" width="10" height="10" fill="${c}"/>` : `<circle cx="${x(r.speedVsDrafter)}" cy="${y(r.accuracy)}" r="5.5" fill="${c}"/>`;
    parts.push(shape);
  });
  methods.forEach((method, i) => parts.push(`<circle cx="${W - m.r + 20}" cy="${m.t + 10 + i * 20}" r="5" fill="${colors[i % colors.length]}"/><text x="${W - m.r + 32}" y="${m.t + 14 + i * 20}">${esc(method)}</text>`));
  parts.push(`<text x="${W - m.r + 15}" y="${m.t + 30 + methods.length * 20}">● first model drafts, ■ second</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** Runs the subcommand; returns the exit code. */
export async function bench(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values } = parse(args, FLAGS);
  if (values.help) {
    out.write(`${BENCH_HELP}\n`);
    return 0;
  }
  const count = positiveInteger('problems', values.problems) ?? 300;
  const maxNewTokens = positiveInteger('max-new-tokens', values['max-new-tokens']) ?? 160;
  const threads = positiveInteger('threads', values.threads);
  const dirs = (values.model as string[] | undefined) ?? bundledModels();
  if (dirs.length < 2) throw new UsageError('bench needs at least two models (--model DIR --model DIR).');
  const problems = problemSet(count);
  const names = dirs.map((d) => d.split(/[\\/]/).filter(Boolean).pop()!);
  const methods = [{ method: 'single model', options: { strategy: 'single' } as EnsembleOptions }, ...rowsFor()];
  const total = problems.length * dirs.length * methods.length;
  const bar = new cliProgress.SingleBar({ stream: err as NodeJS.WriteStream, format: 'bench [{bar}] {percentage}% | {value}/{total} generations | {row}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, { row: '' });
  const loadOptions = threads ? { threads } : {};
  const rows: BenchRow[] = [];
  try {
    for (let d = 0; d < dirs.length; d++) {
      const ensemble = await SafeEnsemble.load({ models: dirs, drafter: d, loadOptions });
      const tallies = methods.map(() => new Tally());
      // Every method runs on a problem before the next problem starts, so a machine that slows
      // down or speeds up during the run affects all of them alike (speeds are ratios).
      bar.update({ row: `${names[d]} drafts` });
      for (const p of problems) {
        for (let k = 0; k < methods.length; k++) {
          tallies[k]!.add(p, await ensemble.generate(p.question, { ...methods[k]!.options, maxNewTokens }));
          bar.increment();
        }
      }
      await ensemble.dispose();
      const reference = tallies[0]!.tokensPerSecond;
      methods.forEach((m, k) => {
        const t = tallies[k]!;
        rows.push({ method: m.method, drafter: names[d]!, accuracy: t.correct / problems.length, etPct: t.etPct, tokensPerSecond: t.tokensPerSecond, speedVsDrafter: t.tokensPerSecond / reference, correct: t.correct, problems: problems.length });
      });
    }
  } finally {
    bar.stop();
  }
  if (values.plot) writeFileSync(values.plot as string, plotSvg(rows));
  if (values.json) out.write(`${JSON.stringify({ problems: problems.length, maxNewTokens, rows }, null, 2)}\n`);
  else {
    out.write(`${problems.length} held-out problems, max ${maxNewTokens} new tokens, greedy\n\n`);
    out.write('| method | drafter | accuracy | E/T % | tokens/s | speed vs drafter alone |\n|---|---|---:|---:|---:|---:|\n');
    for (const r of [...rows.filter((r) => r.method === 'single model'), ...rows.filter((r) => r.method !== 'single model')]) out.write(`| ${r.method} | ${r.drafter} | ${(r.accuracy * 100).toFixed(1)}% | ${r.etPct.toFixed(2)} | ${r.tokensPerSecond.toFixed(0)} | ${r.speedVsDrafter.toFixed(2)}× |\n`);
    if (values.plot) out.write(`\nplot: ${String(values.plot)}\n`);
  }
  return 0;
}
