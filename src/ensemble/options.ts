/**
 * SAFE's knobs: types, the paper's defaults, and validation that names the bad field.
 * @module
 */
import { describeValue } from '../describeValue.js';
import { InvalidArgumentError } from '../errors.js';
import { checkConstraint, type TextConstraint } from './constraint.js';
import { responseFormatConstraint, type ResponseFormat } from './jsonConstraint.js';
import { normalizeToolChoice, type ToolChoice } from './toolChoice.js';

/** What happens after SAFE rejects a drafted token: a draw from the residual distribution, or from the ensemble's. */
export type RejectionRule = 'residual' | 'ensemble';
/** Sampling: where the temperature applies (see {@link EnsembleOptions.temperatureAt}). */
export type TemperatureAt = 'members' | 'ensemble';

/** Decoding strategy. */
export type Strategy = 'safe' | 'single' | 'every-token' | 'gac-threshold';
/** How the averaged distribution is built at an ensemble point. */
export type BaseEnsembler = 'unite' | 'gac';
/**
 * How UniTE scores a union entry: `first-token` (the paper: each model's probability of its
 * first sub-token for the string), `look-ahead` (each model's probability that the text
 * continues with the whole string, by the chain rule over its own tokens), or `auto`:
 * look-ahead when sampling; greedy, look-ahead only at the points where the models' tokens
 * split the text differently (a verifier's token ends elsewhere than the drafted one, or a
 * candidate extends another) and first-token elsewhere (where each measured better).
 */
export type UnionScoring = 'first-token' | 'look-ahead' | 'auto';
/**
 * How look-ahead sampling pools the models' family probabilities: `product` (a weighted
 * geometric mean, renormalized: a family one model all but rules out gets almost nothing) or
 * `mean` (the weighted average, as SAFE averages first-token rows).
 */
export type FamilyPoolMethod = 'product' | 'mean';
/** How an overly smooth ensemble distribution is sharpened. */
export type SharpeningMethod = 'heuristic' | 'geometric' | 'none';

/** Sharpening of the ensemble distribution (paper §3.3). */
export interface SharpeningOptions {
  /**
   * `heuristic` (paper main results), `geometric` (geometric mean) or `none`. With look-ahead
   * scoring and a temperature, `geometric` pools the models' family shares by their weighted
   * geometric mean (a product of experts; `below: 1` for every point), and SAFE's test stays exact over it.
   */
  method?: SharpeningMethod;
  /** Sharpen only when the largest averaged probability is below this (default 0.5). */
  below?: number;
  /** Heuristic only: candidates need averaged probability above this (default 0.1). */
  lambda?: number;
}

/** Options of one generation; every field can also be a {@link SafeEnsemble} default. */
export interface EnsembleOptions {
  /** `safe` (default), `single` (drafter only), `every-token` (UniTE at every token), `gac-threshold`. */
  strategy?: Strategy;
  /** Base ensembler at ensemble points: `unite` (default, top-k union) or `gac` (full-vocabulary union). */
  baseEnsembler?: BaseEnsembler;
  /** Tokens per model in the UniTE union (default 10). Not the sampling cut: that is `topK`. */
  unionTopK?: number;
  /** SAFE with UniTE: score union entries by their `first-token` (the paper) or by `look-ahead` over each model's own tokens of the whole string (when sampling, prefix-related entries merge into families; see the README); `auto` (default): look-ahead when sampling; greedy, look-ahead where the models' tokens split the text differently and first-token elsewhere. */
  unionScoring?: UnionScoring;
  /** With `unionScoring: 'look-ahead'`: how many of the union's best entries are scored as whole strings (default 6, 2 to 64). */
  lookAheadCandidates?: number;
  /** Sampling with `unionScoring: 'look-ahead'`: pool the models' family probabilities by their weighted geometric mean (`product`, default) or average (`mean`; then `sharpening: { method: 'geometric' }` applies the product only below its threshold). */
  familyPool?: FamilyPoolMethod;
  /** Sampling temperature: 0 (default) decodes greedily; from 1e-5 to 100 every member's distribution is tempered and sampled. */
  temperature?: number;
  /** Sampling: keep only each member's `topK` most likely tokens (default 0: no cut). Not the UniTE union size (`unionTopK`). */
  topK?: number;
  /** Sampling: keep each member's smallest set of likely tokens whose probability reaches `topP` (default 1: no cut). */
  topP?: number;
  /** Sampling: seed of the generation's random numbers; the same seed and input give the same text (default: a fresh seed, reported in `stats.sampling.seed`). */
  seed?: number;
  /** SAFE sampling, after a rejected draft token: `residual` (default; exact: tokens follow the ensemble distribution) or `ensemble` (the paper's literal reading: draw from the ensemble distribution). */
  rejectionRule?: RejectionRule;
  /**
   * Sampling: where the temperature applies. `members` (default): each model's distribution is
   * tempered, then they are averaged. `ensemble`: the models' distributions are averaged at
   * temperature 1 and the average is tempered (P_ens^(1/T), renormalized), which keeps the
   * ensemble's own preference where the models disagree; the drafter still drafts at T, and
   * SAFE's acceptance test stays exact. With look-ahead scoring the families' pool is tempered
   * and the drafter's family probabilities are read at T.
   */
  temperatureAt?: TemperatureAt;
  /** Tokens the drafter proposes per cycle (default 5). */
  draftLength?: number;
  /** Skip the ensemble when the mean own-token probability exceeds this (default 0.5). */
  consensusThreshold?: number;
  /** Skip when every verifier's argmax is its own aligned token (default true). */
  unanimitySkip?: boolean;
  /** Only ensemble at byte positions that are token boundaries for every model (default true). */
  stabilityGate?: boolean;
  /** GaC only: ensemble only where the drafter's own-token probability is below this (default 0.5). */
  gacDrafterGate?: number;
  /** Sharpening of the ensemble distribution (default heuristic, below 0.5, λ 0.1). */
  sharpening?: SharpeningOptions;
  /** One positive weight per model, drafter first in model order (default equal); normalized to sum 1. */
  weights?: number[];
  /** Most tokens the drafter may generate (default 256). */
  maxNewTokens?: number;
  /** Strings that end generation; the text is cut before them. */
  stop?: string[];
  /** Aborts between forward passes. */
  signal?: AbortSignal;
  /** Record every ensemble decision in `result.trace` (default false). */
  trace?: boolean;
  /** Treat a string input as the final prompt text: no chat template (default false). */
  rawPrompt?: boolean;
  /** Let special-token strings in the prompt's text (`<|im_end|>`, `</s>`...) act as control tokens (default false: they stay text). */
  allowSpecialTokens?: boolean;
  /** Tools offered to the chat template (OpenAI function format). */
  tools?: unknown[];
  /** What the response may be: every drafted, ensembled and sampled token is masked by it (see {@link TextConstraint}). */
  constraint?: TextConstraint;
  /** With `tools`: `'auto'` (default: text, or calls constrained to the tools' names and schemas once the call marker starts), `'required'` / `'any'` (a call is forced), a tool's name (that tool is called), or `'none'` (unconstrained, no call expected). */
  toolChoice?: ToolChoice;
  /** What the response must be: `'json'` (any JSON object), a JSON Schema, or OpenAI's `{ type: 'json_schema', json_schema: { schema } }`; the response is then valid JSON by construction (see JsonSchemaConstraint in langchain-safe-ensemble/research). */
  responseFormat?: ResponseFormat;
  /** Debug: re-tokenize every model's text and recompute every cache from scratch each cycle. */
  recomputeCaches?: boolean;
}

/** Fully resolved options. */
export interface ResolvedOptions {
  strategy: Strategy;
  baseEnsembler: BaseEnsembler;
  unionTopK: number;
  /** Resolved: with a temperature `auto` has become `look-ahead`; greedy `auto` scores by look-ahead only at the points where the models' tokens split the candidates differently. */
  unionScoring: UnionScoring;
  lookAheadCandidates: number;
  familyPool: FamilyPoolMethod;
  temperature: number;
  topK: number;
  topP: number;
  seed: number | null;
  rejectionRule: RejectionRule;
  temperatureAt: TemperatureAt;
  draftLength: number;
  consensusThreshold: number;
  unanimitySkip: boolean;
  stabilityGate: boolean;
  gacDrafterGate: number;
  sharpening: Required<SharpeningOptions>;
  weights: number[] | null;
  maxNewTokens: number;
  stop: string[];
  signal: AbortSignal | undefined;
  trace: boolean;
  rawPrompt: boolean;
  allowSpecialTokens: boolean;
  tools: unknown[] | undefined;
  constraint: TextConstraint | undefined;
  toolChoice: ToolChoice | undefined;
  recomputeCaches: boolean;
}

/**
 * The paper's defaults (SAFE.md §4), with a library-sized maxNewTokens; beyond the paper,
 * `unionScoring: 'auto'` scores by look-ahead when sampling and, greedy, where the models' tokens
 * split the text differently (elsewhere greedy keeps the paper's first token).
 */
export const DEFAULT_OPTIONS: Readonly<Omit<ResolvedOptions, 'signal' | 'tools' | 'weights' | 'constraint' | 'toolChoice'>> = Object.freeze({
  strategy: 'safe',
  baseEnsembler: 'unite',
  unionTopK: 10,
  unionScoring: 'auto',
  lookAheadCandidates: 6,
  familyPool: 'product',
  temperature: 0,
  topK: 0,
  topP: 1,
  seed: null,
  rejectionRule: 'residual',
  temperatureAt: 'members',
  draftLength: 5,
  consensusThreshold: 0.5,
  unanimitySkip: true,
  stabilityGate: true,
  gacDrafterGate: 0.5,
  sharpening: Object.freeze({ method: 'heuristic', below: 0.5, lambda: 0.1 }) as Required<SharpeningOptions>,
  maxNewTokens: 256,
  stop: [] as string[],
  trace: false,
  rawPrompt: false,
  allowSpecialTokens: false,
  recomputeCaches: false,
});

/** Names of all option fields, for filtering call options. */
export const OPTION_KEYS: ReadonlyArray<keyof EnsembleOptions> = [
  'strategy', 'baseEnsembler', 'unionTopK', 'unionScoring', 'lookAheadCandidates', 'familyPool', 'temperature', 'topK', 'topP', 'seed', 'rejectionRule', 'temperatureAt', 'draftLength', 'consensusThreshold', 'unanimitySkip', 'stabilityGate',
  'gacDrafterGate', 'sharpening', 'weights', 'maxNewTokens', 'stop', 'signal', 'trace', 'rawPrompt', 'allowSpecialTokens', 'tools', 'recomputeCaches', 'constraint', 'responseFormat', 'toolChoice',
];

function fail(field: string, message: string): never {
  throw new InvalidArgumentError(field, `${field}: ${message}`);
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) fail(field, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describeValue(value)}.`);
  return value as T;
}

function bool(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(field, `must be true or false, got ${describeValue(value)}.`);
  return value;
}

function int(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `must be an integer from ${min} to ${max}, got ${describeValue(value)}.`);
  }
  return value;
}

function unit(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    fail(field, `must be a number from 0 to 1, got ${describeValue(value)}.`);
  }
  return value;
}

/** A finite number in [min, max] (`min` itself excluded unless `withMin`). */
function ranged(field: string, value: unknown, min: number, max: number, withMin: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value > max || (withMin ? value < min : value <= min)) {
    fail(field, `must be a number ${withMin ? 'from' : 'above'} ${min} ${withMin ? 'to' : 'up to'} ${max}, got ${describeValue(value)}.`);
  }
  return value;
}

/**
 * The smallest temperature that samples (vLLM's threshold too): below it a tempered
 * distribution is one-hot in all but rounding, and logits divided by it approach the float
 * range; such values are refused with this floor named, 0 meaning greedy.
 */
export const MIN_TEMPERATURE = 1e-5;

/** Temperature 0 (greedy) or a number from {@link MIN_TEMPERATURE} to 100. */
function temperatureOf(value: unknown): number {
  if (value === 0) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < MIN_TEMPERATURE || value > 100) {
    fail('temperature', `must be 0 (greedy) or a number from 1e-5 to 100, got ${describeValue(value)}.${typeof value === 'number' && value > 0 && value < MIN_TEMPERATURE ? ' Sampling that cold is greedy decoding in effect: pass 0.' : ''}`);
  }
  return value;
}

/** Whether the options sample (temperature above 0) rather than decode greedily. */
export function isSampling(options: Pick<ResolvedOptions, 'temperature'>): boolean {
  return options.temperature > 0;
}

/** Deepest nesting a tool definition may have (JSON Schemas of real tools nest a few levels). */
const MAX_TOOL_DEPTH = 64;

/**
 * Tool definitions must be plain JSON data the chat templates can render: an array of objects,
 * no cycles, at most {@link MAX_TOOL_DEPTH} levels deep. Walked without recursion, so a hostile
 * schema cannot exhaust the stack.
 */
export function checkToolDefinitions(tools: unknown): asserts tools is unknown[] {
  if (!Array.isArray(tools)) fail('tools', 'must be an array of tool definitions.');
  const ancestors = new Map<object, number>();
  const stack: Array<{ value: unknown; depth: number; path: string; exit?: object }> = tools.map((value, i) => ({ value, depth: 1, path: `tools[${i}]` })).reverse();
  while (stack.length > 0) {
    const { value, depth, path, exit } = stack.pop()!;
    if (exit) {
      ancestors.delete(exit);
      continue;
    }
    if (value === null || typeof value !== 'object') {
      if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') fail('tools', `${path} is a ${typeof value}; tool definitions must be JSON data (name, description, parameters as a JSON Schema).`);
      continue;
    }
    if (ancestors.has(value)) fail('tools', `${path} refers back to an enclosing object (a cyclic schema); tool definitions must be JSON data: inline the schema or use a $ref string.`);
    if (depth > MAX_TOOL_DEPTH) fail('tools', `${path.length > 120 ? `${path.slice(0, 120)}…` : path} nests more than ${MAX_TOOL_DEPTH} levels deep; flatten the tool's JSON Schema.`);
    ancestors.set(value, depth);
    stack.push({ value: null, depth, path, exit: value });
    const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v] as const) : Object.entries(value).map(([k, v]) => [`.${k.length > 40 ? `${k.slice(0, 40)}…` : k}`, v] as const);
    for (let i = entries.length - 1; i >= 0; i--) stack.push({ value: entries[i]![1], depth: depth + 1, path: path + entries[i]![0] });
  }
}

/**
 * Merges layers of options (later wins) over the defaults and validates every field.
 * @param modelCount number of models, to check `weights`.
 * @throws InvalidArgumentError naming the first bad field.
 */
export function resolveOptions(modelCount: number, ...layers: Array<EnsembleOptions | undefined>): ResolvedOptions {
  // No prototype: a `__proto__` key (JSON.parse makes it an own key) stays a plain, unknown key.
  const merged: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const layer of layers) {
    if (layer === undefined || layer === null) continue;
    if (typeof layer !== 'object') fail('options', `must be an object, got ${typeof layer}.`);
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      if (k === 'sharpening' && v && typeof v === 'object' && !Array.isArray(v) && merged.sharpening && typeof merged.sharpening === 'object' && !Array.isArray(merged.sharpening)) merged.sharpening = Object.assign(Object.create(null), merged.sharpening, v);
      else merged[k] = v;
    }
  }
  const get = <K extends keyof typeof DEFAULT_OPTIONS>(k: K) => (merged[k] !== undefined ? merged[k] : DEFAULT_OPTIONS[k]);
  const sharpIn = (merged.sharpening ?? {}) as Record<string, unknown>;
  if (!sharpIn || typeof sharpIn !== 'object' || Array.isArray(sharpIn)) fail('sharpening', `must be an object like { method, below, lambda }, got ${describeValue(sharpIn)}.`);
  for (const k of Object.keys(sharpIn)) if (!['method', 'below', 'lambda'].includes(k)) fail(`sharpening.${k}`, 'is not a sharpening option; use method, below and lambda.');
  const sharpening: Required<SharpeningOptions> = {
    method: oneOf('sharpening.method', sharpIn.method ?? DEFAULT_OPTIONS.sharpening.method, ['heuristic', 'geometric', 'none'] as const),
    below: unit('sharpening.below', sharpIn.below ?? DEFAULT_OPTIONS.sharpening.below),
    lambda: unit('sharpening.lambda', sharpIn.lambda ?? DEFAULT_OPTIONS.sharpening.lambda),
  };
  let weights: number[] | null = null;
  if (merged.weights !== undefined) {
    const w = merged.weights;
    if (!Array.isArray(w) || w.length !== modelCount || w.some((x) => typeof x !== 'number' || !Number.isFinite(x) || x <= 0)) {
      fail('weights', `must be ${modelCount} positive numbers (one per model, in model order), got ${describeValue(w)}.`);
    }
    const sum = w.reduce((a: number, b: number) => a + b, 0);
    weights = w.map((x: number) => x / sum);
  }
  const stop = get('stop');
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) fail('stop', `must be an array of non-empty strings, got ${describeValue(stop)}.`);
  const signal = merged.signal;
  if (signal !== undefined && (typeof signal !== 'object' || signal === null || typeof (signal as AbortSignal).aborted !== 'boolean')) {
    fail('signal', 'must be an AbortSignal.');
  }
  const tools = merged.tools;
  if (tools !== undefined) checkToolDefinitions(tools);
  const known = new Set<string>(OPTION_KEYS as readonly string[]);
  for (const k of Object.keys(merged)) if (!known.has(k)) fail(k, `is not a SAFE option; valid options are ${[...known].join(', ')}.`);
  const temperature = temperatureOf(get('temperature'));
  const unionScoring = oneOf('unionScoring', get('unionScoring'), ['auto', 'first-token', 'look-ahead'] as const);
  const resolved: ResolvedOptions = {
    strategy: oneOf('strategy', get('strategy'), ['safe', 'single', 'every-token', 'gac-threshold'] as const),
    baseEnsembler: oneOf('baseEnsembler', get('baseEnsembler'), ['unite', 'gac'] as const),
    unionTopK: int('unionTopK', get('unionTopK'), 1, 1000),
    unionScoring: unionScoring === 'auto' && temperature > 0 ? 'look-ahead' : unionScoring,
    lookAheadCandidates: int('lookAheadCandidates', get('lookAheadCandidates'), 2, 64),
    familyPool: oneOf('familyPool', get('familyPool'), ['product', 'mean'] as const),
    temperature,
    topK: int('topK', get('topK'), 0, 1_000_000),
    topP: ranged('topP', get('topP'), 0, 1, false),
    seed: merged.seed === undefined || merged.seed === null ? null : int('seed', merged.seed, 0, Number.MAX_SAFE_INTEGER),
    rejectionRule: oneOf('rejectionRule', get('rejectionRule'), ['residual', 'ensemble'] as const),
    temperatureAt: oneOf('temperatureAt', get('temperatureAt'), ['members', 'ensemble'] as const),
    draftLength: int('draftLength', get('draftLength'), 1, 64),
    consensusThreshold: unit('consensusThreshold', get('consensusThreshold')),
    unanimitySkip: bool('unanimitySkip', get('unanimitySkip')),
    stabilityGate: bool('stabilityGate', get('stabilityGate')),
    gacDrafterGate: unit('gacDrafterGate', get('gacDrafterGate')),
    sharpening,
    weights,
    maxNewTokens: int('maxNewTokens', get('maxNewTokens'), 1, 1_000_000),
    stop: [...(stop as string[])],
    signal: signal as AbortSignal | undefined,
    trace: bool('trace', get('trace')),
    rawPrompt: bool('rawPrompt', get('rawPrompt')),
    allowSpecialTokens: bool('allowSpecialTokens', get('allowSpecialTokens')),
    tools: tools as unknown[] | undefined,
    constraint: constraintOf(merged.constraint, merged.responseFormat),
    toolChoice: merged.toolChoice === undefined ? undefined : (normalizeToolChoice(merged.toolChoice), merged.toolChoice as ToolChoice),
    recomputeCaches: bool('recomputeCaches', get('recomputeCaches')),
  };
  return resolved;
}

/** The constraint of a call: its own, or its response format's (not both). */
function constraintOf(constraint: unknown, format: unknown): TextConstraint | undefined {
  const own = checkConstraint(constraint);
  const fromFormat = responseFormatConstraint(format);
  if (own && fromFormat) throw new InvalidArgumentError('responseFormat', 'responseFormat and constraint were both given; a call takes one of them.');
  return own ?? fromFormat ?? undefined;
}
