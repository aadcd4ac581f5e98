/**
 * The messages between a {@link WorkerBackend} and its member worker, and how errors cross:
 * a typed library error arrives as the same class with the same code, message and fields.
 * @module
 */
import * as errors from '../errors.js';
import type { OpenedModel, OpenRequest, TokenizerFacts } from './openSession.js';
import type { RowAnswer, RowQuery, ScorePayload, ScoreRequest } from '../member/scores.js';
import type { LogitsPayload } from './sessionRunner.js';

/** Slots of the state a worker shares with the main thread: a pass is running; stop starting passes. */
export const RUNNING = 0;
export const STOPPING = 1;

/**
 * Requests to the worker; `seq` names the sequence (0: the model's own). `crop` and `close`
 * have no reply (they take effect before the sequence's next request);
 * `tokenizer` has none either: it completes an `open` sent while the tokenizer was loading.
 */
export type WorkerRequest =
  | { op: 'open'; id: number; request: OpenRequest }
  | { op: 'forward'; id: number; seq: number; ids: number[]; wanted: number }
  | { op: 'score'; id: number; seq: number; ids: number[]; request: ScoreRequest }
  | { op: 'read'; id: number; seq: number; queries: RowQuery[] }
  | { op: 'crop'; seq: number; length: number }
  | { op: 'close'; seq: number }
  | { op: 'tokenizer'; facts: TokenizerFacts }
  | { op: 'release'; id: number };

/** Replies and notices from the worker. */
export type WorkerReply =
  | { op: 'done'; id: number; value: OpenedModel | LogitsPayload | ScorePayload | RowAnswer[] | null }
  | { op: 'failed'; id: number; error: SerializedError }
  | { op: 'warning'; message: string };

/** An error as plain data. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  field?: string;
  path?: string;
  provider?: string;
  stack?: string;
}

export function serializeError(error: unknown): SerializedError {
  const e = error as Partial<SerializedError> & { message?: unknown };
  const out: SerializedError = { name: typeof e?.name === 'string' ? e.name : 'Error', message: typeof e?.message === 'string' ? e.message : String(error) };
  for (const k of ['code', 'field', 'path', 'provider', 'stack'] as const) if (typeof e?.[k] === 'string') out[k] = e[k];
  return out;
}

/** Rebuilds an error on this side: library errors as their own class, anything else as InferenceError. */
export function deserializeError(e: SerializedError, where: string): Error {
  let error: Error;
  switch (e.name) {
    case 'ModelNotFoundError': error = new errors.ModelNotFoundError(e.message); break;
    case 'ModelFileMissingError': error = new errors.ModelFileMissingError(e.path ?? '', e.message); break;
    case 'ModelFileInvalidError': error = new errors.ModelFileInvalidError(e.path ?? '', e.message); break;
    case 'UnsupportedGraphError': error = new errors.UnsupportedGraphError(e.message); break;
    case 'TokenizerError': error = new errors.TokenizerError(e.message); break;
    case 'ExecutionProviderError': error = new errors.ExecutionProviderError(e.provider ?? '', e.message); break;
    case 'InvalidArgumentError': error = new errors.InvalidArgumentError(e.field ?? '', e.message); break;
    case 'ContextOverflowError': error = new errors.ContextOverflowError(e.message); break;
    case 'WorkerError': error = new errors.WorkerError(e.message); break;
    case 'InferenceError': error = new errors.InferenceError(e.message); break;
    default: error = new errors.InferenceError(`${where}: ${e.name}: ${e.message}`);
  }
  if (e.stack) error.stack = `${error.name}: ${error.message}\n    [in the model's worker thread]\n${e.stack.split('\n').slice(1).join('\n')}`;
  return error;
}
