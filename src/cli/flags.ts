/**
 * Command-line flags for every SAFE knob, parsed with Node's util.parseArgs.
 * @module
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { EnsembleOptions } from '../ensemble/options.js';

/** A usage error: printed with the command's help hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Flags shared by `generate` and `bench`: the SAFE knobs. */
export const KNOB_FLAGS = {
  strategy: { type: 'string' },
  'base-ensembler': { type: 'string' },
  'union-top-k': { type: 'string' },
  'union-scoring': { type: 'string' },
  'family-pool': { type: 'string' },
  'look-ahead-candidates': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  'rejection-rule': { type: 'string' },
  'draft-length': { type: 'string' },
  'consensus-threshold': { type: 'string' },
  'no-unanimity-skip': { type: 'boolean' },
  'no-stability-gate': { type: 'boolean' },
  'gac-drafter-gate': { type: 'string' },
  sharpening: { type: 'string' },
  'sharpen-below': { type: 'string' },
  'sharpen-lambda': { type: 'string' },
  weights: { type: 'string' },
  drafter: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Help text of the knob flags. */
export const KNOB_HELP = `SAFE options (defaults are the paper's, but --union-scoring):
  --strategy NAME             safe | single | every-token | gac-threshold   (safe)
  --base-ensembler NAME       unite | gac                                    (unite)
  --union-top-k N             tokens per model in the UniTE union            (10)
  --union-scoring NAME        auto | first-token | look-ahead: how union strings score
                              (auto: look-ahead when sampling; greedy, where the
                              models' tokens split the text differently)
  --family-pool NAME          product | mean: look-ahead sampling's pool of families (product)
  --look-ahead-candidates N   look-ahead: union entries scored as whole strings (6)
  --draft-length N            tokens drafted per cycle                        (5)
  --consensus-threshold P     skip when mean own-token probability > P        (0.5)
  --no-unanimity-skip         do not skip when every verifier agrees
  --no-stability-gate         allow ensembles at unstable positions (ablation)
  --gac-drafter-gate P        GaC: ensemble only where drafter prob < P       (0.5)
  --sharpening NAME           heuristic | geometric | none                    (heuristic)
  --sharpen-below P           sharpen when the top average prob < P           (0.5)
  --sharpen-lambda P          heuristic candidates need average prob > P      (0.1)
  --weights W1,W2,...         one weight per model, in --model order          (equal)
  --drafter N                 index of the drafting model                     (0)
Sampling (temperature 0 decodes greedily):
  --temperature T             sample every member's distribution at T         (0)
  --top-k N                   sampling: keep each member's N best tokens      (0: all)
  --top-p P                   sampling: keep the best tokens up to mass P     (1: all)
  --seed N                    sampling: seed; same seed, same text            (fresh)
  --rejection-rule NAME       SAFE sampling: residual (exact) | ensemble (the paper's reading)  (residual)`;

/** Plain decimal numbers only: no hex (0x10), no empty value, no Infinity. */
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** A flag's value as a decimal number; undefined when the flag is absent. */
export function number(flag: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const n = Number(text);
  if (!DECIMAL.test(text) || !Number.isFinite(n)) throw new UsageError(`--${flag} needs a decimal number, got "${String(value)}".`);
  return n;
}

/** A flag's value as a positive integer; undefined when the flag is absent. */
export function positiveInteger(flag: string, value: unknown): number | undefined {
  const n = number(flag, value);
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new UsageError(`--${flag} needs a positive integer, got "${String(value)}".`);
  return n;
}

/** An integer flag that may be 0; undefined when absent. */
export function nonNegativeInteger(flag: string, value: unknown): number | undefined {
  const n = number(flag, value);
  if (n !== undefined && !(Number.isInteger(n) && n >= 0)) throw new UsageError(`--${flag} needs an integer >= 0, got "${String(value)}".`);
  return n;
}

/** Converts parsed knob flags to engine options (the engine validates ranges). */
export function knobsFromFlags(values: Record<string, unknown>): EnsembleOptions {
  const v = values as Record<string, string | boolean | undefined>;
  const options: EnsembleOptions = {};
  if (v.strategy !== undefined) options.strategy = v.strategy as EnsembleOptions['strategy'];
  if (v['base-ensembler'] !== undefined) options.baseEnsembler = v['base-ensembler'] as EnsembleOptions['baseEnsembler'];
  const set = <K extends keyof EnsembleOptions>(key: K, flag: string) => {
    const n = number(flag, v[flag] as string | undefined);
    if (n !== undefined) (options as Record<string, unknown>)[key] = n;
  };
  set('unionTopK', 'union-top-k');
  if (v['union-scoring'] !== undefined) options.unionScoring = v['union-scoring'] as EnsembleOptions['unionScoring'];
  if (v['family-pool'] !== undefined) options.familyPool = v['family-pool'] as EnsembleOptions['familyPool'];
  set('lookAheadCandidates', 'look-ahead-candidates');
  set('temperature', 'temperature');
  set('topK', 'top-k');
  set('topP', 'top-p');
  set('seed', 'seed');
  if (v['rejection-rule'] !== undefined) options.rejectionRule = v['rejection-rule'] as EnsembleOptions['rejectionRule'];
  set('draftLength', 'draft-length');
  set('consensusThreshold', 'consensus-threshold');
  set('gacDrafterGate', 'gac-drafter-gate');
  if (v['no-unanimity-skip']) options.unanimitySkip = false;
  if (v['no-stability-gate']) options.stabilityGate = false;
  const sharpening: NonNullable<EnsembleOptions['sharpening']> = {};
  if (v.sharpening !== undefined) sharpening.method = v.sharpening as 'heuristic';
  const below = number('sharpen-below', v['sharpen-below'] as string | undefined);
  const lambda = number('sharpen-lambda', v['sharpen-lambda'] as string | undefined);
  if (below !== undefined) sharpening.below = below;
  if (lambda !== undefined) sharpening.lambda = lambda;
  if (Object.keys(sharpening).length) options.sharpening = sharpening;
  if (typeof v.weights === 'string') options.weights = v.weights.split(',').map((w) => number('weights', w)!);
  return options;
}

/** parseArgs with usage errors instead of raw TypeErrors. */
export function parse<T extends ParseArgsConfig['options']>(args: string[], options: T): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, unknown>, positionals };
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}
