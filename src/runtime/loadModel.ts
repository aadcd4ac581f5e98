/**
 * Loads a Hugging Face-layout ONNX causal LM (local folder or Hub id) into a {@link CausalLM}.
 * @module
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { describeValue } from '../describeValue.js';
import {
  InvalidArgumentError,
  ModelFileInvalidError,
  ModelFileMissingError,
  ModelNotFoundError,
  UnsupportedGraphError,
} from '../errors.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { CausalLM, type ExecutionMode, type ModelInfo } from './causalLM.js';
import { isHubId, resolveHubModel, type HubOptions } from './hub.js';
import { DTYPE_SUFFIX, type ModelDType } from './dtypes.js';
import type { ExecutionOptions } from './providers.js';
import { MAX_CONTEXT, validateLoadOptions } from './loadOptions.js';
import { openSession, type OpenedModel, type OpenRequest, type TokenizerFacts } from './openSession.js';
import type { ModelBackend } from './sessionRunner.js';
import { WorkerBackend } from './workerBackend.js';

/** Options of {@link loadModel}. */
export interface LoadModelOptions extends ExecutionOptions, HubOptions {
  /** Weight format; picks `onnx/<base><suffix>.onnx` (default: the fp32 file, else the only one present). */
  dtype?: ModelDType;
  /** ONNX file name or base name inside the subfolder, e.g. `decoder_model_merged` or `model_q4.onnx`. */
  modelFileName?: string;
  /** Folder holding the ONNX files (default `onnx`). */
  subfolder?: string;
  /**
   * Where the onnxruntime session runs: `'worker'` (default) in a worker thread of its own, so
   * forward passes never block the event loop and members run in parallel; `'inline'` on the
   * calling thread.
   */
  execution?: ExecutionMode;
  /**
   * Rewrite the graph at load (in memory; the file is not touched) so a step fetches only the
   * new key/value rows and a rollback copies nothing: KV-cache work stops growing with the
   * context (default true). Graphs over 2 GiB run as exported.
   */
  incrementalCache?: boolean;
  /**
   * Give a graph without a `logits_to_keep` input one at load (in memory), by slicing the hidden
   * states before an LM head that is a plain MatMul: a prefill then computes one logits row, not
   * one per prompt token (default true). Other heads run as exported.
   */
  logitsToKeep?: boolean;
  /**
   * Append TopK and a per-row sum (which screens the row for NaN/Inf) after the logits at load
   * (in memory), so a scoring pass ranks its rows inside onnxruntime instead of in JavaScript
   * (default true). Summaries are identical either way; graphs whose opset predates TopK's
   * k input (11) run without.
   */
  inGraphTopK?: boolean;
  /** Check every returned logits row for NaN/Inf (default true). */
  checkLogits?: boolean;
  /** Override the context length (default: config.json `max_position_embeddings`). */
  maxPositions?: number;
  /**
   * Most bytes of logits one onnxruntime run may return (default 64 MiB). Graphs without a
   * `logits_to_keep` input return a row per fed token, so long prompts are fed in chunks of
   * at most this many rows' worth; bounds peak memory at prefill.
   */
  logitsBudgetBytes?: number;
  /**
   * Let passes of generations running at once share one batched onnxruntime run (default
   * true; graphs without a free batch axis, an attention mask or position ids, and dynamically
   * quantized graphs, take turns, with one warning). Off: every pass runs alone, as when one
   * generation runs.
   */
  batchPasses?: boolean;
}

const BASE_NAMES = ['model', 'decoder_model_merged', 'decoder_with_past_model', 'decoder_model'];

export function readJsonFile(path: string, required: true): Record<string, unknown>;
export function readJsonFile(path: string, required: false): Record<string, unknown> | null;
export function readJsonFile(path: string, required: boolean): Record<string, unknown> | null {
  if (!existsSync(path)) {
    if (!required) return null;
    throw new ModelFileMissingError(path, `config.json not found at ${path}. A model folder needs config.json, tokenizer.json, tokenizer_config.json and onnx/*.onnx (transformers.js layout).`);
  }
  const text = readFileSync(path, 'utf8');
  try {
    const value = JSON.parse(text) as unknown;
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('expected a JSON object');
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new ModelFileInvalidError(path, `${path} is not a valid JSON object (${(cause as Error).message}). Restore the file from the model's repository.`, { cause });
  }
}

/** Chooses the ONNX file the way transformers.js names them. */
export function selectOnnxFile(dir: string, options: Pick<LoadModelOptions, 'dtype' | 'modelFileName' | 'subfolder'>): string {
  const sub = join(dir, options.subfolder ?? 'onnx');
  const present = existsSync(sub) ? readdirSync(sub).filter((f) => f.endsWith('.onnx')) : [];
  const suffix = options.dtype ? DTYPE_SUFFIX[options.dtype] : undefined;
  if (options.dtype && suffix === undefined) {
    throw new InvalidArgumentError('dtype', `unknown dtype "${options.dtype}"; use one of ${Object.keys(DTYPE_SUFFIX).join(', ')}.`);
  }
  let candidates: string[];
  if (options.modelFileName) {
    const name = options.modelFileName;
    candidates = name.endsWith('.onnx') ? [name] : [`${name}${suffix ?? ''}.onnx`];
  } else {
    candidates = BASE_NAMES.map((b) => `${b}${suffix ?? ''}.onnx`);
    if (suffix === undefined && present.length === 1) candidates.push(present[0]!);
  }
  const found = candidates.find((c) => present.includes(c));
  if (!found) {
    const listing = present.length ? `it has ${present.join(', ')}` : 'it has no .onnx files';
    throw new ModelFileMissingError(
      join(sub, candidates[0]!),
      `no ONNX model file ${candidates.slice(0, 4).join(' / ')} in ${sub} (${listing}). ` +
        'Pass dtype (fp32, fp16, q8, q4...) or modelFileName to pick one that exists.',
    );
  }
  return join(sub, found);
}

/** A size field of config.json that must be a positive integer when present. */
export function sizeField(config: Record<string, unknown>, keys: string[], file: string): number | null {
  for (const k of keys) {
    const v = config[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_CONTEXT) {
      throw new ModelFileInvalidError(file, `${file}: "${k}" must be a positive integer, got ${describeValue(v)}. Fix config.json, or pass maxPositions to loadModel.`);
    }
    return v;
  }
  const text = config.text_config;
  if (text && typeof text === 'object') return sizeField(text as Record<string, unknown>, keys, file);
  return null;
}

/**
 * Loads an ONNX causal LM.
 *
 * `source` is a local folder in the transformers.js layout (`config.json`,
 * `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`, `onnx/*.onnx`) or a
 * Hub id (`org/name`) resolved through transformers.js's cache and download settings.
 *
 * @example
 * ```ts
 * const lm = await loadModel('./models/tiny', { dtype: 'fp32', threads: 2 });
 * console.log(lm.info.graph, lm.tokenizer.eosTokenIds);
 * ```
 */
export async function loadModel(source: string, options: LoadModelOptions = {}): Promise<CausalLM> {
  if (typeof source !== 'string' || source.trim() === '') {
    throw new InvalidArgumentError('source', 'loadModel() needs a model folder path or a Hub id, got an empty value.');
  }
  options = validateLoadOptions(options, options?.onWarning);
  const dir = await resolveSource(source, options);
  const config = readJsonFile(join(dir, 'config.json'), true);
  const generationConfig = readJsonFile(join(dir, 'generation_config.json'), false);
  const onnxFile = selectOnnxFile(dir, options);
  if (statSync(onnxFile).size === 0) {
    throw new ModelFileInvalidError(onnxFile, `${onnxFile} is empty. Re-export or re-download the model file.`);
  }
  const execution = options.execution ?? defaultExecution();
  const { onWarning, execution: _mode, dtype: _d, modelFileName: _f, subfolder: _s, checkLogits, maxPositions: _m, logitsBudgetBytes, batchPasses, incrementalCache, logitsToKeep, inGraphTopK, revision: _r, cacheDir: _c, localFilesOnly: _l, ...executionOptions } = options;
  void [_mode, _d, _f, _s, _m, _r, _c, _l];
  const request: OpenRequest = { name: source, onnxFile, config, execution: executionOptions, checkLogits: checkLogits ?? true, logitsBudgetBytes, batchPasses, incrementalCache, logitsToKeep, inGraphTopK };
  const warn = onWarning ?? console.warn;
  const loadTokenizer = () => TextTokenizer.fromFolder(dir, { generationConfig, modelConfig: config });
  const factsOf = (t: TextTokenizer) => ({ tokenizerIds: t.ordinaryIds, tokenCount: t.vocabSize });
  let tokenizer: TextTokenizer;
  let backend: ModelBackend;
  let opened: OpenedModel;
  if (execution === 'worker') {
    try {
      structuredClone(request);
    } catch (cause) {
      throw new InvalidArgumentError('sessionOptions', `sessionOptions: must be plain data to reach the model's worker thread (${(cause as Error).message}); pass execution: 'inline' to run the session on this thread.`);
    }
    // The worker creates the session (reading and rewriting the graph too) while this thread
    // parses the tokenizer: a load takes the longer of the two, not their sum.
    let resolveFacts!: (facts: TokenizerFacts) => void;
    let rejectFacts!: (error: unknown) => void;
    const facts = new Promise<TokenizerFacts>((resolve, reject) => ((resolveFacts = resolve), (rejectFacts = reject)));
    const opening = WorkerBackend.open(request, warn, facts);
    opening.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
    try {
      tokenizer = await loadTokenizer();
      resolveFacts(factsOf(tokenizer));
    } catch (error) {
      rejectFacts(error);
      await opening.catch(() => undefined);
      throw error;
    }
    ({ backend, opened } = await opening);
  } else {
    tokenizer = await loadTokenizer();
    ({ runner: backend, opened } = await openSession({ ...request, ...factsOf(tokenizer) }, warn));
  }
  try {
    checkVocabularies(dir, tokenizer, opened.vocabSize, warn);
    const maxPositions = options.maxPositions ?? sizeField(config, ['max_position_embeddings', 'n_positions', 'max_sequence_length', 'seq_length'], join(dir, 'config.json')) ?? 2048;
    const info: ModelInfo = {
      source,
      dir,
      onnxFile,
      config,
      generationConfig,
      numLayers: opened.graph.numCacheLayers,
      numKeyValueHeads: opened.numKeyValueHeads,
      headDim: opened.headDim,
      vocabSize: opened.vocabSize,
      maxPositions,
      providers: opened.providers,
      graph: opened.graph,
      incrementalCache: opened.incrementalCache,
      inGraphTopK: opened.inGraphTopK,
      logitsToKeepAdded: opened.logitsToKeepAdded,
    };
    return new CausalLM(backend, tokenizer, info, execution);
  } catch (error) {
    await backend.release();
    throw error;
  }
}

/**
 * Where sessions run when `execution` is not given: in worker threads, unless the environment
 * variable SAFE_ENSEMBLE_EXECUTION says `inline` (how the test suite runs in both modes).
 */
export function defaultExecution(): ExecutionMode {
  return process.env.SAFE_ENSEMBLE_EXECUTION === 'inline' ? 'inline' : 'worker';
}

/** Logits rows may be padded past the tokenizer's ids (to a multiple of 64, 128...) by at most this many. */
export function paddingAllowance(tokenizerIds: number): number {
  return Math.max(1024, Math.ceil(tokenizerIds * 0.02));
}

/**
 * A model and a tokenizer belong together only if every ordinary id the tokenizer has has a
 * logits column, and the logits are not far wider than the tokenizer's vocabulary (which means
 * another model's tokenizer: its ids would index the wrong rows and the output would be
 * garbage). Special tokens added above the logits width (Gemma 3's `<image_soft_token>`) can
 * never be produced: they are allowed, said once, and kept out of every lookup.
 */
function checkVocabularies(dir: string, tokenizer: TextTokenizer, logitsWidth: number, warn: (message: string) => void): void {
  const tokenizerIds = tokenizer.vocabSize;
  if (tokenizer.ordinaryIds > logitsWidth) {
    throw new UnsupportedGraphError(
      `${dir}: the tokenizer can produce ids up to ${tokenizer.ordinaryIds - 1} (${tokenizerIds} ids, added tokens included) but the model's logits have only ${logitsWidth} columns. ` +
        'The tokenizer files most likely belong to another model; copy the tokenizer.json / tokenizer_config.json that were exported with this ONNX file.',
    );
  }
  if (tokenizerIds > logitsWidth) {
    const above = Array.from({ length: Math.min(3, tokenizerIds - logitsWidth) }, (_, i) => tokenizer.tokenString(logitsWidth + i));
    warn(`${dir}: ${tokenizerIds - logitsWidth} special token(s) (${above.join(', ')}${tokenizerIds - logitsWidth > 3 ? ', …' : ''}) have ids at or above the model's ${logitsWidth} logits columns: the model can never produce them, so they are left out of every distribution and never drafted.`);
    tokenizer.limitToModel(logitsWidth);
  }
  const allowed = paddingAllowance(tokenizerIds);
  if (logitsWidth - tokenizerIds > allowed) {
    throw new UnsupportedGraphError(
      `${dir}: the model's logits have ${logitsWidth} columns but the tokenizer has only ${tokenizerIds} ids (padding of up to ${allowed} rows is accepted). ` +
        'The tokenizer files most likely belong to another model; copy the tokenizer.json / tokenizer_config.json that were exported with this ONNX file.',
    );
  }
}

export async function resolveSource(source: string, options: HubOptions): Promise<string> {
  const asPath = resolve(source);
  if (existsSync(asPath)) {
    if (!statSync(asPath).isDirectory()) {
      throw new ModelNotFoundError(`${asPath} is a file; loadModel() needs the model folder that contains config.json and onnx/.`);
    }
    return asPath;
  }
  const looksLikePath = isAbsolute(source) || source.startsWith('.') || source.includes('\\') || source.split('/').length > 2;
  if (!looksLikePath && isHubId(source)) return resolveHubModel(source, options);
  throw new ModelNotFoundError(`model folder ${asPath} does not exist. Pass the path of a folder with config.json, tokenizer files and onnx/*.onnx, or a Hub id like "org/name".`);
}
