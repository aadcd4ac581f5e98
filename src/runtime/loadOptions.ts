/**
 * Validation of model load options, before any file is read or session created: a bad value
 * fails with INVALID_ARGUMENT naming the field, never as a "truncated file" or a hang.
 * @module
 */
import { availableParallelism } from 'node:os';
import { describeValue } from '../describeValue.js';
import { InvalidArgumentError } from '../errors.js';
import { DTYPE_SUFFIX } from './dtypes.js';
import type { ExecutionProviderName } from './providers.js';

/** Execution providers onnxruntime-node knows by name. */
export const EXECUTION_PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'cuda', 'webgpu', 'tensorrt', 'dml', 'coreml'];

const LOAD_OPTION_KEYS = new Set([
  'executionProviders', 'deviceId', 'fallbackToCpu', 'threads', 'graphOptimizationLevel', 'spinWait', 'sessionOptions', 'onWarning',
  'execution', 'dtype', 'modelFileName', 'subfolder', 'checkLogits', 'incrementalCache', 'logitsToKeep', 'inGraphTopK', 'maxPositions', 'revision', 'cacheDir', 'localFilesOnly', 'logitsBudgetBytes', 'batchPasses',
]);

/** Largest context length accepted (guards against typos such as 1e12). */
export const MAX_CONTEXT = 16_777_216;

function fail(field: string, message: string): never {
  throw new InvalidArgumentError(field, `${field}: ${message}`);
}

/** A positive integer field, or undefined when absent. */
export function positiveIntegerOption(field: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    fail(field, `must be a positive integer${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ''}, got ${describeValue(value)}.`);
  }
  return value;
}

function optionalType(field: string, value: unknown, type: 'string' | 'boolean' | 'function' | 'object'): void {
  if (value === undefined) return;
  if (typeof value !== type || value === null || (type === 'object' && Array.isArray(value))) fail(field, `must be a ${type === 'object' ? 'plain object' : type}, got ${describeValue(value)}.`);
  if (type === 'string' && (value as string).trim() === '') fail(field, 'must not be empty.');
}

/**
 * Checks every load option and returns them with `threads` capped at the machine's cores
 * (a warning says so): onnxruntime starts one thread per requested thread, and 100,000 of
 * them stall the process long before any error.
 * @throws InvalidArgumentError naming the first bad field.
 */
export function validateLoadOptions<T extends object>(options: T | undefined, warn: (message: string) => void = console.warn): T {
  if (options === undefined || options === null) return {} as T;
  if (typeof options !== 'object' || Array.isArray(options)) fail('loadOptions', `must be an object of load options, got ${describeValue(options)}.`);
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (o[k] !== undefined && !LOAD_OPTION_KEYS.has(k)) fail(k, `is not a load option; valid ones are ${[...LOAD_OPTION_KEYS].join(', ')}.`);
  }
  const eps = o.executionProviders;
  if (eps !== undefined) {
    if (!Array.isArray(eps)) fail('executionProviders', `must be an array such as ['cuda', 'cpu'], got ${describeValue(eps)}.`);
    eps.forEach((ep, i) => {
      if (typeof ep !== 'string' || !EXECUTION_PROVIDERS.includes(ep as ExecutionProviderName)) {
        fail(`executionProviders[${i}]`, `unknown execution provider ${describeValue(ep)}; use one of ${EXECUTION_PROVIDERS.join(', ')}.`);
      }
    });
  }
  if (o.deviceId !== undefined && (typeof o.deviceId !== 'number' || !Number.isInteger(o.deviceId) || o.deviceId < 0)) {
    fail('deviceId', `must be a GPU index (an integer >= 0), got ${describeValue(o.deviceId)}.`);
  }
  const cores = availableParallelism();
  let threads = positiveIntegerOption('threads', o.threads, 1024);
  if (threads !== undefined && threads > cores) {
    warn(`[langchain-safe-ensemble] threads: ${threads} requested but this machine has ${cores} cores; using ${cores}.`);
    threads = cores;
  }
  if (o.graphOptimizationLevel !== undefined && !['disabled', 'basic', 'extended', 'all'].includes(o.graphOptimizationLevel as string)) {
    fail('graphOptimizationLevel', `must be 'disabled', 'basic', 'extended' or 'all', got ${describeValue(o.graphOptimizationLevel)}.`);
  }
  if (o.dtype !== undefined && (typeof o.dtype !== 'string' || !(o.dtype in DTYPE_SUFFIX))) {
    fail('dtype', `unknown dtype ${describeValue(o.dtype)}; use one of ${Object.keys(DTYPE_SUFFIX).join(', ')}.`);
  }
  if (o.execution !== undefined && o.execution !== 'worker' && o.execution !== 'inline') {
    fail('execution', `must be 'worker' (a worker thread per model, the default) or 'inline' (this thread), got ${describeValue(o.execution)}.`);
  }
  positiveIntegerOption('maxPositions', o.maxPositions, MAX_CONTEXT);
  positiveIntegerOption('logitsBudgetBytes', o.logitsBudgetBytes);
  for (const k of ['fallbackToCpu', 'spinWait', 'checkLogits', 'incrementalCache', 'logitsToKeep', 'inGraphTopK', 'localFilesOnly', 'batchPasses'] as const) optionalType(k, o[k], 'boolean');
  for (const k of ['modelFileName', 'subfolder', 'revision', 'cacheDir'] as const) optionalType(k, o[k], 'string');
  optionalType('onWarning', o.onWarning, 'function');
  optionalType('sessionOptions', o.sessionOptions, 'object');
  return (threads === o.threads ? options : { ...options, threads }) as T;
}
