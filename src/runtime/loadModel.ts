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
  SafeEnsembleError,
  UnsupportedGraphError,
} from '../errors.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { CausalLM, type ModelInfo } from './causalLM.js';
import { discoverGraph } from './graph.js';
import { isHubId, resolveHubModel, type HubOptions } from './hub.js';
import { releaseSession, type InferenceSession } from './ort.js';
import { DTYPE_SUFFIX, type ModelDType } from './dtypes.js';
import { createSessionWithProviders, type ExecutionOptions } from './providers.js';
import { MAX_CONTEXT, validateLoadOptions } from './loadOptions.js';

/** Options of {@link loadModel}. */
export interface LoadModelOptions extends ExecutionOptions, HubOptions {
  /** Weight format; picks `onnx/<base><suffix>.onnx` (default: the fp32 file, else the only one present). */
  dtype?: ModelDType;
  /** ONNX file name or base name inside the subfolder, e.g. `decoder_model_merged` or `model_q4.onnx`. */
  modelFileName?: string;
  /** Folder holding the ONNX files (default `onnx`). */
  subfolder?: string;
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
}

const BASE_NAMES = ['model', 'decoder_model_merged', 'decoder_with_past_model', 'decoder_model'];

function readJsonFile(path: string, required: true): Record<string, unknown>;
function readJsonFile(path: string, required: false): Record<string, unknown> | null;
function readJsonFile(path: string, required: boolean): Record<string, unknown> | null {
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
function sizeField(config: Record<string, unknown>, keys: string[], file: string): number | null {
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

function numberField(config: Record<string, unknown>, keys: string[]): number | null {
  for (const k of keys) {
    const v = config[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  const text = config.text_config;
  if (text && typeof text === 'object') return numberField(text as Record<string, unknown>, keys);
  return null;
}

function classifySessionError(onnxFile: string): (error: unknown) => Error {
  return (error: unknown) => {
    if (error instanceof SafeEnsembleError) return error;
    const msg = String((error as Error)?.message ?? error);
    const external = /external data|\.onnx_data|GetExternalDataInfo|ExternalData|model_path must not be empty/i.exec(msg);
    if (external || /No such file|cannot open|could not open|doesn't exist|does not exist/i.test(msg)) {
      const path = /([^\s'"]+\.onnx_data[^\s'"]*)/.exec(msg)?.[1] ?? `${onnxFile}_data`;
      return new ModelFileMissingError(path, `${onnxFile} refers to external weight data that could not be read (${msg.split('\n')[0]}). Put the *.onnx_data file(s) next to the .onnx file.`, { cause: error });
    }
    return new ModelFileInvalidError(onnxFile, `onnxruntime could not load ${onnxFile}: ${msg.split('\n')[0]}. The file may be truncated or not an ONNX model; re-export or re-download it.`, { cause: error });
  };
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
  const tokenizer = await TextTokenizer.fromFolder(dir, { generationConfig, modelConfig: config });
  const onnxFile = selectOnnxFile(dir, options);
  if (statSync(onnxFile).size === 0) {
    throw new ModelFileInvalidError(onnxFile, `${onnxFile} is empty. Re-export or re-download the model file.`);
  }
  const { session, resolved } = await createSessionWithProviders(onnxFile, options, classifySessionError(onnxFile));
  try {
    const graph = discoverGraph(session, onnxFile);
    const heads = numberField(config, ['num_attention_heads', 'n_head', 'num_heads']);
    const hidden = numberField(config, ['hidden_size', 'n_embd', 'd_model']);
    const kvHeads = numberField(config, ['num_key_value_heads', 'n_kv_heads', 'multi_query_group_num']) ?? graph.declaredCacheDims.heads ?? heads;
    const headDim = numberField(config, ['head_dim']) ?? graph.declaredCacheDims.headDim ?? (heads && hidden ? hidden / heads : null);
    if (graph.numCacheLayers > 0) {
      if (!kvHeads || !headDim || !Number.isInteger(headDim)) {
        throw new UnsupportedGraphError(`${onnxFile}: cannot size the KV cache; config.json needs num_key_value_heads (or num_attention_heads) and head_dim (or hidden_size).`);
      }
      const declared = graph.declaredCacheDims;
      if ((declared.heads !== null && declared.heads !== kvHeads) || (declared.headDim !== null && declared.headDim !== headDim)) {
        throw new UnsupportedGraphError(`${onnxFile}: the graph's cache is [batch, ${declared.heads}, past, ${declared.headDim}] but config.json implies [batch, ${kvHeads}, past, ${headDim}]; fix num_key_value_heads/head_dim in config.json.`);
      }
      const configLayers = numberField(config, ['num_hidden_layers', 'n_layer', 'num_layers']);
      if (configLayers !== null && configLayers !== graph.numCacheLayers) {
        throw new UnsupportedGraphError(`${onnxFile}: the graph has ${graph.numCacheLayers} cache layers but config.json says num_hidden_layers = ${configLayers}.`);
      }
    }
    // The logits width: declared by the graph, else measured with one token.
    const vocabSize = graph.logitsVocabSize ?? (await measureLogitsWidth(session, tokenizer, { source, dir, onnxFile, config, generationConfig, numLayers: graph.numCacheLayers, numKeyValueHeads: kvHeads ?? 0, headDim: headDim ?? 0, vocabSize: tokenizer.vocabSize, maxPositions: 1 << 20, providers: resolved, graph }));
    checkVocabularies(dir, tokenizer.vocabSize, vocabSize);
    const maxPositions = options.maxPositions ?? sizeField(config, ['max_position_embeddings', 'n_positions', 'max_sequence_length', 'seq_length'], join(dir, 'config.json')) ?? 2048;
    const info: ModelInfo = {
      source,
      dir,
      onnxFile,
      config,
      generationConfig,
      numLayers: graph.numCacheLayers,
      numKeyValueHeads: kvHeads ?? 0,
      headDim: headDim ?? 0,
      vocabSize,
      maxPositions,
      providers: resolved,
      graph,
    };
    return new CausalLM(session, tokenizer, info, options.checkLogits ?? true, options.logitsBudgetBytes);
  } catch (error) {
    await releaseSession(session);
    throw error;
  }
}

/** Logits rows may be padded past the tokenizer's ids (to a multiple of 64, 128...) by at most this many. */
export function paddingAllowance(tokenizerIds: number): number {
  return Math.max(1024, Math.ceil(tokenizerIds * 0.02));
}

/**
 * A model and a tokenizer belong together only if every id the tokenizer can produce (added
 * and special tokens included) has a logits column, and the logits are not far wider than the
 * tokenizer's vocabulary (which means another model's tokenizer: its ids would index the
 * wrong rows and the output would be garbage).
 */
function checkVocabularies(dir: string, tokenizerIds: number, logitsWidth: number): void {
  if (tokenizerIds > logitsWidth) {
    throw new UnsupportedGraphError(
      `${dir}: the tokenizer can produce ids up to ${tokenizerIds - 1} (${tokenizerIds} ids, added tokens included) but the model's logits have only ${logitsWidth} columns. ` +
        'The tokenizer files most likely belong to another model; copy the tokenizer.json / tokenizer_config.json that were exported with this ONNX file.',
    );
  }
  const allowed = paddingAllowance(tokenizerIds);
  if (logitsWidth - tokenizerIds > allowed) {
    throw new UnsupportedGraphError(
      `${dir}: the model's logits have ${logitsWidth} columns but the tokenizer has only ${tokenizerIds} ids (padding of up to ${allowed} rows is accepted). ` +
        'The tokenizer files most likely belong to another model; copy the tokenizer.json / tokenizer_config.json that were exported with this ONNX file.',
    );
  }
}

/** Runs one token through a graph whose logits width is symbolic, to read it. */
async function measureLogitsWidth(session: InferenceSession, tokenizer: TextTokenizer, info: ModelInfo): Promise<number> {
  // The probe feeds id 0 and must not reject a narrow width itself: that is what is measured.
  const anyWidth = Object.create(tokenizer, { vocabSize: { value: 1 } }) as TextTokenizer;
  const probe = new CausalLM(session, anyWidth, info, false);
  const logits = await probe.forward([0], { logits: 'last' });
  return logits.vocabSize;
}

async function resolveSource(source: string, options: HubOptions): Promise<string> {
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
