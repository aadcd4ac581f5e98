/**
 * `safe-ensemble bench`: the paper's finding in miniature on the bundled models: accuracy,
 * E/T and speed of every single model, every-token UniTE, thresholded GaC, SAFE with UniTE and
 * GaC, and the sharpening ablation, with each model as the drafter. Speed is measured the way
 * benchMethod.ts describes (Williams order, full GC, warm-up, wall and CPU time, bootstrap).
 * @module
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { SafeEnsemble } from '../ensemble/safeEnsemble.js';
import type { EnsembleOptions } from '../ensemble/options.js';
import { bundledModels, packageRoot } from '../demo/models.js';
import { extractAnswer, problemSet, type WordProblem } from '../demo/wordProblems.js';
import { fullGc, namesSomeoneElse, speedRatio, timed, williamsOrders, type Measurement, type Ratio } from './benchMethod.js';
import { nonNegativeInteger, number, parse, positiveInteger, UsageError } from './flags.js';
import { plotSvg } from './benchPlot.js';
import { methodTable, type BenchRow } from './benchTable.js';
import { runStructured, STRUCTURED_FORMATS, STRUCTURED_METHODS, structuredTable, type StructuredItem, type StructuredRow } from './benchStructured.js';

/** The methods the benchmark compares, by id. */
export const BENCH_METHODS: ReadonlyArray<{ id: string; method: string; options: EnsembleOptions }> = [
  { id: 'single', method: 'single model', options: { strategy: 'single' } },
  { id: 'every-token', method: 'every-token UniTE', options: { strategy: 'every-token' } },
  { id: 'gac-threshold', method: 'GaC thresholded', options: { strategy: 'gac-threshold' } },
  { id: 'safe', method: 'SAFE + UniTE (heuristic λ 0.1)', options: { strategy: 'safe', unionScoring: 'first-token' } },
  { id: 'safe-look-ahead', method: 'SAFE + UniTE, look-ahead scoring', options: { strategy: 'safe', unionScoring: 'look-ahead' } },
  { id: 'safe-auto', method: "SAFE + UniTE, look-ahead where tokens split differently (the default 'auto')", options: { strategy: 'safe', unionScoring: 'auto' } },
  { id: 'safe-gac', method: 'SAFE + GaC', options: { strategy: 'safe', baseEnsembler: 'gac' } },
  { id: 'safe-no-sharpening', method: 'SAFE + UniTE, no sharpening', options: { strategy: 'safe', unionScoring: 'first-token', sharpening: { method: 'none' } } },
  { id: 'safe-lambda-0.2', method: 'SAFE + UniTE, heuristic λ 0.2', options: { strategy: 'safe', unionScoring: 'first-token', sharpening: { method: 'heuristic', lambda: 0.2 } } },
  { id: 'safe-lambda-0.3', method: 'SAFE + UniTE, heuristic λ 0.3', options: { strategy: 'safe', unionScoring: 'first-token', sharpening: { method: 'heuristic', lambda: 0.3 } } },
  { id: 'safe-geometric', method: 'SAFE + UniTE, geometric', options: { strategy: 'safe', unionScoring: 'first-token', sharpening: { method: 'geometric' } } },
  { id: 'safe-ensemble-rule', method: "SAFE + UniTE, paper's rejection rule", options: { strategy: 'safe', unionScoring: 'first-token', rejectionRule: 'ensemble' } },
  { id: 'safe-tempered-ensemble', method: 'SAFE + UniTE, temperature after averaging', options: { strategy: 'safe', unionScoring: 'first-token', temperatureAt: 'ensemble' } },
  { id: 'safe-look-ahead-tempered', method: 'SAFE + UniTE, look-ahead scoring, temperature after the product', options: { strategy: 'safe', unionScoring: 'look-ahead', temperatureAt: 'ensemble' } },
  { id: 'safe-look-ahead-mean', method: 'SAFE + UniTE, look-ahead scoring, families averaged', options: { strategy: 'safe', unionScoring: 'look-ahead', familyPool: 'mean' } },
  { id: 'safe-look-ahead-tempered-mean', method: 'SAFE + UniTE, look-ahead scoring, temperature after averaging', options: { strategy: 'safe', unionScoring: 'look-ahead', familyPool: 'mean', temperatureAt: 'ensemble' } },
  { id: 'safe-look-ahead-geometric', method: 'SAFE + UniTE, look-ahead scoring, averaged, geometric below 0.5', options: { strategy: 'safe', unionScoring: 'look-ahead', familyPool: 'mean', sharpening: { method: 'geometric' } } },
];

/** The methods a sampling benchmark (--temperature above 0) runs by default. */
export const SAMPLING_METHODS = ['single', 'every-token', 'safe', 'safe-ensemble-rule', 'safe-tempered-ensemble', 'safe-look-ahead'];
/** Methods that differ from another only when sampling: left out of a greedy run's default. */
const SAMPLING_ONLY = new Set(['safe-ensemble-rule', 'safe-tempered-ensemble', 'safe-look-ahead-tempered', 'safe-look-ahead-mean', 'safe-look-ahead-tempered-mean', 'safe-look-ahead-geometric']);

export const BENCH_HELP = `Usage: safe-ensemble bench [options]

Runs every strategy on held-out word problems with the bundled demo models (or --model DIRs):
each model alone, every-token UniTE, thresholded GaC, SAFE+UniTE, SAFE+GaC, and the sharpening
ablation (none, heuristic λ 0.1/0.2/0.3, geometric), each ensemble with every model drafting.

Speed is the ratio of tokens per second to the same drafter alone, measured side by side: one
warm-up generation per method first, then on every problem the methods run in the order of a
row of a Williams design (each method in every position, and after every other method, equally
often), with a full garbage collection before each timed generation. Wall and CPU time are both
reported, each with a 95% bootstrap interval over problems; an ensemble faster than its drafter
alone beyond that interval is flagged (it cannot be: SAFE includes the drafter's own passes).

With --temperature T every method samples (default methods: ${SAMPLING_METHODS.join(', ')}; SAFE
with the exact residual rule and with the paper's rule); --seeds N runs every problem with N
seeds (the same seeds for every method) and averages over all of them.

Structured output: afterwards, the single models and SAFE answer the first problems again with a
JSON Schema as the response format (${STRUCTURED_FORMATS.map((f) => f.label).join(', then ')}); the table reports
outputs that parse and validate, and their accuracy beside the same method's free-text accuracy
on the same problems (accuracy only: these generations are not timed).

Options:
  --problems N         held-out problems (default 300)
  --temperature T      sample at temperature T (default 0: greedy)
  --top-p P            sampling: top-p cut (default 1)
  --top-k N            sampling: top-k cut (default 0: none)
  --seeds N            sampling: seeds per problem (default 1)
  --model DIR          model folder; repeat (default: the bundled models)
  --pairs              every pair of 3+ models (default: all three bundled), each drafting
  --methods LIST       comma-separated method ids (default all): ${BENCH_METHODS.map((m) => m.id).join(', ')}
  --isolation MODE     gc (default): one process, full GC between methods; process: every
                       method in a process of its own per block of problems
  --blocks N           process isolation: blocks of problems, each block its own method order (default 4)
  --max-new-tokens N   per problem (default 160)
  --structured-problems N   problems asked with a response format (default: all; 0: none)
  --json               print the rows as JSON instead of a table
  --save FILE          also write the JSON report to FILE
  --plot FILE          write an SVG of accuracy against relative speed
  --threads N          onnxruntime threads per model
  -h, --help           this help`;

const FLAGS = {
  problems: { type: 'string' },
  model: { type: 'string', multiple: true },
  pairs: { type: 'boolean' },
  methods: { type: 'string' },
  isolation: { type: 'string' },
  blocks: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  json: { type: 'boolean' },
  save: { type: 'string' },
  plot: { type: 'string' },
  threads: { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seeds: { type: 'string' },
  'structured-problems': { type: 'string' },
  child: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** One ensemble to benchmark: model folders and which of them drafts. */
interface EnsembleConfig {
  models: string[];
  drafter: number;
}

/** What a process-isolated child runs (the hidden --child flag). */
interface ChildSpec extends EnsembleConfig {
  method: string;
  sampling: SamplingSetup | null;
  problems: number[];
  count: number;
  maxNewTokens: number;
  threads?: number;
}

const nameOf = (dir: string) => dir.split(/[\\/]/).filter(Boolean).pop()!;

/** Sampling settings of a benchmark run (null: greedy). */
interface SamplingSetup {
  temperature: number;
  topP: number;
  topK: number;
  seeds: number;
}

/** One generation of the benchmark: a problem and, when sampling, its seed. */
interface BenchItem {
  problem: WordProblem;
  /** Index of the problem in the benchmark set. */
  index: number;
  seed: number | null;
}

/** The problems × seeds to run (seeds 1..N for every problem; null when greedy). */
function benchItems(problems: WordProblem[], indices: readonly number[], sampling: SamplingSetup | null): BenchItem[] {
  const items: BenchItem[] = [];
  for (let s = 1; s <= (sampling?.seeds ?? 1); s++) for (const i of indices) items.push({ problem: problems[i]!, index: i, seed: sampling ? s * 100_003 + i : null });
  return items;
}

/** A method's options for one item (sampling settings and the item's seed added). */
function optionsFor(id: string, sampling: SamplingSetup | null, seed: number | null): EnsembleOptions {
  const base = methodById(id).options;
  if (!sampling) return base;
  return { ...base, temperature: sampling.temperature, topP: sampling.topP, topK: sampling.topK, ...(seed !== null ? { seed } : {}) };
}

/** A problem outside the benchmark set, for warm-up generations. */
function warmUpProblem(): WordProblem {
  return problemSet(1, { split: 'test', seed: 99 })[0]!;
}

function measure(problem: WordProblem, index: number, position: number, r: Awaited<ReturnType<SafeEnsemble['generate']>>, wallMs: number, cpuMs: number): Measurement {
  return {
    problem: index,
    position,
    tokens: r.stats.generatedTokens,
    ensembled: r.stats.ensembledTokens,
    wallMs,
    cpuMs,
    correct: extractAnswer(r.text) === problem.answer,
    startsWithSpace: /^\s/.test(r.text),
    foreignName: namesSomeoneElse(r.text, problem.question),
  };
}

function methodById(id: string) {
  const m = BENCH_METHODS.find((x) => x.id === id);
  if (!m) throw new UsageError(`--methods: unknown method "${id}"; use ${BENCH_METHODS.map((x) => x.id).join(', ')}.`);
  return m;
}

/** One generation, timed after a full garbage collection. */
async function timedGeneration(ensemble: SafeEnsemble, options: EnsembleOptions, problem: WordProblem, maxNewTokens: number) {
  fullGc();
  return timed(() => ensemble.generate(problem.question, { ...options, maxNewTokens }));
}

/** Every method on every problem in one process, in Williams order, GC before each. */
async function runInProcess(config: EnsembleConfig, methods: string[], items: BenchItem[], maxNewTokens: number, threads: number | undefined, sampling: SamplingSetup | null, tick: () => void): Promise<Map<string, Measurement[]>> {
  const ensemble = await SafeEnsemble.load({ models: config.models, drafter: config.drafter, loadOptions: threads ? { threads } : {} });
  const out = new Map(methods.map((id) => [id, [] as Measurement[]]));
  try {
    const warm = warmUpProblem();
    for (const id of methods) await ensemble.generate(warm.question, { ...optionsFor(id, sampling, 1), maxNewTokens });
    const orders = williamsOrders(methods.length);
    for (let i = 0; i < items.length; i++) {
      const order = orders[i % orders.length]!;
      const item = items[i]!;
      for (let position = 0; position < order.length; position++) {
        const id = methods[order[position]!]!;
        const t = await timedGeneration(ensemble, optionsFor(id, sampling, item.seed), item.problem, maxNewTokens);
        out.get(id)!.push(measure(item.problem, i, position, t.value, t.wallMs, t.cpuMs));
        tick();
      }
    }
  } finally {
    await ensemble.dispose();
  }
  return out;
}

/** The hidden --child mode: one method, a few problems, a fresh process; prints JSON. */
async function runChild(spec: ChildSpec, out: NodeJS.WritableStream): Promise<number> {
  const problems = problemSet(spec.count);
  const ensemble = await SafeEnsemble.load({ models: spec.models, drafter: spec.drafter, loadOptions: spec.threads ? { threads: spec.threads } : {} });
  const measurements: Measurement[] = [];
  try {
    await ensemble.generate(warmUpProblem().question, { ...optionsFor(spec.method, spec.sampling, 1), maxNewTokens: spec.maxNewTokens });
    const items = benchItems(problems, spec.problems, spec.sampling);
    for (const item of items) {
      const t = await timedGeneration(ensemble, optionsFor(spec.method, spec.sampling, item.seed), item.problem, spec.maxNewTokens);
      // Items are numbered seed-major, as in one process.
      measurements.push(measure(item.problem, item.index + (spec.sampling ? (Math.floor((item.seed ?? 0) / 100_003) - 1) * spec.count : 0), 0, t.value, t.wallMs, t.cpuMs));
    }
  } finally {
    await ensemble.dispose();
  }
  out.write(`${JSON.stringify(measurements)}\n`);
  return 0;
}

/** Every method in a process of its own per block of problems; blocks rotate the method order. */
async function runIsolated(config: EnsembleConfig, methods: string[], count: number, blocks: number, maxNewTokens: number, threads: number | undefined, sampling: SamplingSetup | null, tick: (n: number) => void): Promise<Map<string, Measurement[]>> {
  const bin = join(packageRoot(), 'bin', 'safe-ensemble.cjs');
  const out = new Map(methods.map((id) => [id, [] as Measurement[]]));
  const orders = williamsOrders(methods.length);
  const size = Math.ceil(count / blocks);
  for (let b = 0; b * size < count; b++) {
    const indices = Array.from({ length: Math.min(size, count - b * size) }, (_, i) => b * size + i);
    const order = orders[b % orders.length]!;
    for (let position = 0; position < order.length; position++) {
      const id = methods[order[position]!]!;
      const spec: ChildSpec = { ...config, method: id, sampling, problems: indices, count, maxNewTokens, threads };
      const stdout = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [bin, 'bench', '--child', JSON.stringify(spec)], { maxBuffer: 64 * 2 ** 20 }, (error, so, se) => (error ? reject(new Error(`bench child (${id}) failed: ${se || error.message}`)) : resolve(so))),
      );
      for (const m of JSON.parse(stdout) as Measurement[]) out.get(id)!.push({ ...m, position });
      tick(indices.length * (sampling?.seeds ?? 1));
    }
  }
  for (const list of out.values()) list.sort((a, b) => a.problem - b.problem);
  return out;
}

/** The structured-output rows of one ensemble: its methods asked again with each response format. */
async function structuredRows(config: EnsembleConfig, measured: Map<string, Measurement[]>, items: BenchItem[], structuredCount: number, sampling: SamplingSetup | null, maxNewTokens: number, threads: number | undefined, tick: () => void): Promise<StructuredRow[]> {
  const byMethod = new Map<string, StructuredItem[]>();
  for (const id of STRUCTURED_METHODS) {
    const freeText = measured.get(id);
    if (!freeText) continue;
    const correctAt = new Map(freeText.map((m) => [m.problem, m.correct]));
    byMethod.set(
      id,
      items.flatMap((item, k) => (item.index < structuredCount ? [{ problem: item.problem, options: optionsFor(id, sampling, item.seed), freeTextCorrect: correctAt.get(k) === true }] : [])),
    );
  }
  const ensemble = await SafeEnsemble.load({ models: config.models, drafter: config.drafter, loadOptions: threads ? { threads } : {} });
  try {
    return await runStructured(ensemble, nameOf(config.models[config.drafter]!), byMethod, (id) => methodById(id).method, maxNewTokens, tick);
  } finally {
    await ensemble.dispose();
  }
}

function rowOf(config: EnsembleConfig, id: string, list: Measurement[], reference: Measurement[]): BenchRow {
  const tokens = list.reduce((n, m) => n + m.tokens, 0);
  const wall = speedRatio(list, reference, 'wallMs');
  const cpu = speedRatio(list, reference, 'cpuMs', 1000, 2);
  const beyond = (r: Ratio) => r.low > 1;
  const correct = list.filter((m) => m.correct).length;
  return {
    models: config.models.map(nameOf),
    method: methodById(id).method,
    drafter: nameOf(config.models[config.drafter]!),
    accuracy: correct / list.length,
    etPct: tokens ? (100 * list.reduce((n, m) => n + m.ensembled, 0)) / tokens : 0,
    tokensPerSecond: tokens / (list.reduce((t, m) => t + m.wallMs, 0) / 1000),
    speedVsDrafter: wall.ratio,
    speedInterval: [wall.low, wall.high],
    cpuSpeedVsDrafter: cpu.ratio,
    cpuSpeedInterval: [cpu.low, cpu.high],
    startsWithSpace: list.filter((m) => m.startsWithSpace).length,
    namesNotInPrompt: list.filter((m) => m.foreignName).length,
    flagged: id !== 'single' && (beyond(wall) || beyond(cpu)),
    correct,
    problems: list.length,
  };
}

/** Runs the subcommand; returns the exit code. */
export async function bench(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values } = parse(args, FLAGS);
  if (values.help) {
    out.write(`${BENCH_HELP}\n`);
    return 0;
  }
  if (values.child) return runChild(JSON.parse(values.child as string) as ChildSpec, out);
  const count = positiveInteger('problems', values.problems) ?? 300;
  const maxNewTokens = positiveInteger('max-new-tokens', values['max-new-tokens']) ?? 160;
  const threads = positiveInteger('threads', values.threads);
  const blocks = positiveInteger('blocks', values.blocks) ?? 4;
  const isolation = (values.isolation as string | undefined) ?? 'gc';
  const temperature = number('temperature', values.temperature) ?? 0;
  if (temperature < 0) throw new UsageError(`--temperature needs a number >= 0, got "${String(values.temperature)}".`);
  const sampling: SamplingSetup | null =
    temperature > 0 ? { temperature, topP: number('top-p', values['top-p']) ?? 1, topK: number('top-k', values['top-k']) ?? 0, seeds: positiveInteger('seeds', values.seeds) ?? 1 } : null;
  if (!sampling && (values.seeds !== undefined || values['top-p'] !== undefined || values['top-k'] !== undefined)) throw new UsageError('--seeds, --top-p and --top-k need --temperature above 0.');
  if (isolation !== 'gc' && isolation !== 'process') throw new UsageError(`--isolation: use gc or process, got "${isolation}".`);
  const dirs = (values.model as string[] | undefined) ?? bundledModels({ all: !!values.pairs });
  if (dirs.length < 2) throw new UsageError('bench needs at least two models (--model DIR --model DIR).');
  if (values.pairs && dirs.length < 3) throw new UsageError('--pairs needs three or more models (default: the three bundled ones).');
  // The drafter alone is every ratio's reference: always measured, always first in the list.
  const chosen = values.methods
    ? (values.methods as string).split(',').map((m) => methodById(m.trim()).id)
    : sampling
      ? SAMPLING_METHODS
      : BENCH_METHODS.filter((m) => !SAMPLING_ONLY.has(m.id)).map((m) => m.id);
  const methods = ['single', ...new Set(chosen.filter((id) => id !== 'single'))];
  const configs: EnsembleConfig[] = [];
  if (values.pairs) {
    for (let i = 0; i < dirs.length; i++) for (let j = i + 1; j < dirs.length; j++) for (const drafter of [0, 1]) configs.push({ models: [dirs[i]!, dirs[j]!], drafter });
  } else for (let d = 0; d < dirs.length; d++) configs.push({ models: dirs, drafter: d });
  const structuredCount = Math.min(count, nonNegativeInteger('structured-problems', values['structured-problems']) ?? count);
  const problems = problemSet(count);
  const items = benchItems(problems, problems.map((_, i) => i), sampling);
  const structuredMethods = STRUCTURED_METHODS.filter((id) => methods.includes(id));
  const structuredTotal = structuredCount * (sampling?.seeds ?? 1) * structuredMethods.length * STRUCTURED_FORMATS.length;
  const total = (items.length * methods.length + structuredTotal) * configs.length;
  const bar = new cliProgress.SingleBar({ stream: err as NodeJS.WriteStream, format: 'bench [{bar}] {percentage}% | {value}/{total} generations | {row}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, { row: '' });
  const rows: BenchRow[] = [];
  const structured: StructuredRow[] = [];
  const started = new Date();
  try {
    for (const config of configs) {
      bar.update({ row: `${nameOf(config.models[config.drafter]!)} drafts for ${config.models.map(nameOf).join(' + ')}` });
      const measured =
        isolation === 'process'
          ? await runIsolated(config, methods, problems.length, blocks, maxNewTokens, threads, sampling, (n) => bar.increment(n))
          : await runInProcess(config, methods, items, maxNewTokens, threads, sampling, () => bar.increment());
      const reference = measured.get('single')!;
      for (const id of methods) rows.push(rowOf(config, id, measured.get(id)!, reference));
      if (structuredCount > 0) structured.push(...(await structuredRows(config, measured, items, structuredCount, sampling, maxNewTokens, threads, () => bar.increment())));
    }
  } finally {
    bar.stop();
  }
  const flagged = rows.filter((r) => r.flagged);
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, date: started.toISOString() };
  if (values.plot) writeFileSync(values.plot as string, plotSvg(rows));
  const report = `${JSON.stringify({ problems: problems.length, maxNewTokens, sampling, isolation, order: 'williams', machine, selfCheck: flagged.length === 0 ? 'passed' : 'flagged', rows, structured }, null, 2)}\n`;
  if (values.save) writeFileSync(values.save as string, report);
  if (values.json) out.write(report);
  else {
    const decoding = sampling ? `sampling at temperature ${sampling.temperature} (top-p ${sampling.topP}, top-k ${sampling.topK || 'off'}), ${sampling.seeds} seed${sampling.seeds > 1 ? 's' : ''} per problem` : 'greedy';
    out.write(`${problems.length} held-out problems, max ${maxNewTokens} new tokens, ${decoding}; ${machine.cpus} × ${machine.cpu}, Node ${machine.node}, ${machine.date.slice(0, 10)}\n`);
    out.write(`Speed: methods in Williams order per ${isolation === 'process' ? `block of problems, each method in its own process (${blocks} blocks)` : 'problem, one process, full GC before each generation'}, one warm-up each; ratios to the drafter alone with 95% bootstrap intervals.\n\n`);
    const many = configs.some((c) => c.models.length !== dirs.length);
    out.write(methodTable(rows, many));
    out.write(flagged.length === 0 ? '\nself-check passed: no ensemble is faster than its drafter alone beyond the 95% interval.\n' : `\nself-check FLAGGED ${flagged.length} row(s): faster than the drafter alone beyond the 95% interval (a measurement bias; rerun, or use --isolation process).\n`);
    if (structured.length) out.write(`\nStructured output (the first ${structuredCount} problems again, a JSON Schema as the response format; valid = parses and has exactly the schema's keys and types):\n\n${structuredTable(structured)}`);
    if (values.plot) out.write(`\nplot: ${String(values.plot)}\n`);
  }
  return 0;
}
