/**
 * The library's error hierarchy. Every error carries a stable machine-readable `code`
 * and a message that names the offending thing and how to fix it.
 * @module
 */

/** Stable error codes; new codes may be added, existing ones never change meaning. */
export type SafeEnsembleErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'MODEL_FILE_MISSING'
  | 'MODEL_FILE_INVALID'
  | 'UNSUPPORTED_GRAPH'
  | 'TOKENIZER_INVALID'
  | 'EXECUTION_PROVIDER_UNAVAILABLE'
  | 'INVALID_ARGUMENT'
  | 'DISPOSED'
  | 'INFERENCE_FAILED'
  | 'CONTEXT_OVERFLOW'
  | 'WORKER_FAILED'
  | 'REMOTE_FAILED';

/** Base class of every error this library throws on purpose. */
export class SafeEnsembleError extends Error {
  /** Stable code for programmatic handling. */
  readonly code: SafeEnsembleErrorCode;

  constructor(code: SafeEnsembleErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A model folder, Hub id or cache entry could not be found. */
export class ModelNotFoundError extends SafeEnsembleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_NOT_FOUND', message, options);
  }
}

/** A file the model folder needs is absent (config.json, tokenizer.json, onnx/*.onnx, external data). */
export class ModelFileMissingError extends SafeEnsembleError {
  /** Absolute path of the missing file. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('MODEL_FILE_MISSING', message, options);
    this.path = path;
  }
}

/** A model file exists but cannot be parsed or loaded (bad JSON, truncated ONNX...). */
export class ModelFileInvalidError extends SafeEnsembleError {
  /** Absolute path of the offending file. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('MODEL_FILE_INVALID', message, options);
    this.path = path;
  }
}

/** The ONNX graph's inputs/outputs are not a causal LM contract this runtime can drive. */
export class UnsupportedGraphError extends SafeEnsembleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNSUPPORTED_GRAPH', message, options);
  }
}

/** The tokenizer is missing pieces the runtime relies on (EOS, vocabulary, chat template...). */
export class TokenizerError extends SafeEnsembleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENIZER_INVALID', message, options);
  }
}

/** A requested execution provider (e.g. CUDA) cannot be used on this machine. */
export class ExecutionProviderError extends SafeEnsembleError {
  /** The provider that failed, e.g. `cuda`. */
  readonly provider: string;
  constructor(provider: string, message: string, options?: { cause?: unknown }) {
    super('EXECUTION_PROVIDER_UNAVAILABLE', message, options);
    this.provider = provider;
  }
}

/** An argument or option has a wrong type or is out of range. */
export class InvalidArgumentError extends SafeEnsembleError {
  /** Name of the offending field, e.g. `consensusThreshold`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super('INVALID_ARGUMENT', message);
    this.field = field;
  }
}

/** An object was used after `dispose()`. */
export class DisposedError extends SafeEnsembleError {
  constructor(what: string) {
    super('DISPOSED', `${what} was used after dispose(). Load it again (loadModel / SafeEnsemble.load) to get a fresh instance.`);
  }
}

/** onnxruntime failed while running a model, or produced non-finite logits. */
export class InferenceError extends SafeEnsembleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INFERENCE_FAILED', message, options);
  }
}

/** The sequence would exceed the model's context window. */
export class ContextOverflowError extends SafeEnsembleError {
  constructor(message: string) {
    super('CONTEXT_OVERFLOW', message);
  }
}


/**
 * A model's worker thread could not start or stopped while a call was waiting on it. The call
 * fails; the next call starts a fresh worker (the model's cache starts empty again).
 */
export class WorkerError extends SafeEnsembleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WORKER_FAILED', message, options);
  }
}

/** Why a request to a remote engine failed (see {@link RemoteEngineError}). */
export type RemoteFailure = 'unreachable' | 'timeout' | 'interrupted' | 'http' | 'malformed' | 'mismatch' | 'unsupported';

/**
 * A model served by an inference engine (SGLang, vLLM) could not answer: the server was down or
 * stalled, cut its answer short (`interrupted`), answered with an HTTP error, a redirect or a
 * body this library cannot read or will not hold (`malformed`: not JSON, out-of-range values,
 * larger than the limit), lacks a feature the member needs (`unsupported`), or serves another
 * model than the member's tokenizer (`mismatch`). Names the member and the URL; the ensemble stays usable.
 */
export class RemoteEngineError extends SafeEnsembleError {
  /** What went wrong. */
  readonly failure: RemoteFailure;
  /** The URL of the request. */
  readonly url: string;
  /** The HTTP status, where the server answered with one. */
  readonly status: number | null;

  constructor(failure: RemoteFailure, url: string, message: string, options?: { cause?: unknown; status?: number }) {
    super('REMOTE_FAILED', message, options);
    this.failure = failure;
    this.url = url;
    this.status = options?.status ?? null;
  }
}
