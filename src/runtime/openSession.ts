/**
 * Opens a model's onnxruntime session and learns what is needed to drive it: the graph
 * contract, the cache sizes and the logits width. Runs where the session will live (the
 * caller's thread, or a member worker), so everything it takes and returns is plain data.
 * @module
 */
import { linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { NEW_ROWS_SUFFIX, rewriteForIncrementalCache, SEQ_MAJOR_SUFFIX, usesExternalData, type IncrementalCacheNames } from './cacheRewrite.js';
import { addLogitsToKeep } from './logitsRewrite.js';
import { addInGraphScores, IN_GRAPH_SCORES_PREFIX, type InGraphScoreNames } from './topKRewrite.js';
import { readSkeleton } from './modelSkeleton.js';
import { opTypes } from './onnxProto.js';
import { batchCouplingOp } from './batchedPass.js';
import { UnsupportedGraphError } from '../errors.js';
import { discoverGraph, type GraphContract } from './graph.js';
import { releaseSession, type InferenceSession } from './ort.js';
import type { ExecutionOptions, ResolvedProviders } from './providers.js';
import { createModelSession, type CreatedSession } from './sessionCreation.js';
import { DEFAULT_LOGITS_BUDGET_BYTES, SessionRunner } from './sessionRunner.js';

/** Everything needed to open a session; structured-cloneable, so it can be sent to a worker. */
export interface OpenRequest {
  /** Label for messages (the source as the caller gave it). */
  name: string;
  /** The ONNX file to run. */
  onnxFile: string;
  /** Parsed config.json, for the cache sizes. */
  config: Record<string, unknown>;
  /** Execution settings, without the warning callback (which stays with the caller). */
  execution: Omit<ExecutionOptions, 'onWarning'>;
  /** Ids the tokenizer can produce (absent while the tokenizer still loads: see {@link TokenizerFacts}). */
  tokenizerIds?: number;
  /** Ids the tokenizer has, special tokens included: logits columns from here on are padding. */
  tokenCount?: number;
  /** Check every returned row for NaN/Inf. */
  checkLogits: boolean;
  /** Most bytes of logits one onnxruntime run may return. */
  logitsBudgetBytes?: number;
  /** Whether passes of concurrent sequences may share a run (default true). */
  batchPasses?: boolean;
  /** Rewrite the graph at load so KV-cache work does not grow with the context (default true). */
  incrementalCache?: boolean;
  /** Give a graph without a logits_to_keep input one at load (default true). */
  logitsToKeep?: boolean;
  /** Append TopK and a row-sum check after the logits at load (default true). */
  inGraphTopK?: boolean;
  /** The rewritten graph, already written by the thread that sent the request (see {@link prepareModel}). */
  prepared?: PreparedModel;
}

/** A rewritten graph in a temporary folder, written by one thread for a session created on another. */
export interface PreparedModel {
  /** Path of the rewritten graph (beside links to the model's other files). */
  model: string;
  names: IncrementalCacheNames | null;
  scores: InGraphScoreNames | null;
  logitsToKeepAdded: boolean;
  /** An op that couples the sequences of a batch (they then take turns), or null. */
  batchCouplingOp: string | null;
}

/** What opening learned about the model. */
export interface OpenedModel {
  graph: GraphContract;
  providers: ResolvedProviders;
  numKeyValueHeads: number;
  headDim: number;
  /** Width of a logits row. */
  vocabSize: number;
  /** Whether the graph was rewritten for an incremental KV cache. */
  incrementalCache: boolean;
  /** Whether scoring passes rank rows inside the graph. */
  inGraphTopK: boolean;
  /** Whether the `logits_to_keep` input was added at load (the file itself has none). */
  logitsToKeepAdded: boolean;
}

/** Most bytes of an ONNX file read into memory to rewrite it when no skeleton can be loaded (protobuf files stop at 2 GiB). */
const REWRITE_LIMIT_BYTES = 2 ** 31;

/** The rewrites a request asks for, applied to a model's bytes; null when none applies. */
export function rewritten(bytes: Uint8Array, wanted: { cache: boolean; logits: boolean; scores: boolean }): { model: Uint8Array; names: IncrementalCacheNames | null; scores: InGraphScoreNames | null; logitsToKeepAdded: boolean; batchCouplingOp: string | null } | null {
  let model = bytes;
  const withLogitsToKeep = wanted.logits ? addLogitsToKeep(model) : null;
  if (withLogitsToKeep) model = withLogitsToKeep;
  const scored = wanted.scores ? addInGraphScores(model) : null;
  if (scored) model = scored.bytes;
  const cache = wanted.cache ? rewriteForIncrementalCache(model) : null;
  if (cache) model = cache.bytes;
  if (model === bytes) return null;
  return { model, names: cache?.names ?? null, scores: scored?.names ?? null, logitsToKeepAdded: withLogitsToKeep !== null, batchCouplingOp: batchCouplingOp(opTypes(bytes)) };
}

/**
 * The model to create the session from: the rewritten graph when a load-time rewrite applies
 * (see logitsRewrite.ts, topKRewrite.ts, cacheRewrite.ts), else the file itself. The rewrites
 * run on the model's skeleton (modelSkeleton.ts: its weights left in the file), written beside a
 * hard link to the file, so no weight byte is read or copied here; where no such folder can be
 * made, an inline-weight model is rewritten in memory instead.
 */
function modelSource(request: OpenRequest): ModelSource {
  const asExported: ModelSource = { model: request.onnxFile, names: null, scores: null, logitsToKeepAdded: false, batchCouplingOp: null, cleanup: () => undefined };
  const wanted = { cache: request.incrementalCache !== false, logits: request.logitsToKeep !== false, scores: request.inGraphTopK !== false };
  if (!wanted.cache && !wanted.logits && !wanted.scores) return asExported;
  try {
    const weights = `${WEIGHTS_LINK_PREFIX}${basename(request.onnxFile)}`;
    const skeleton = readSkeleton(request.onnxFile, weights);
    const done = rewritten(skeleton.bytes, wanted);
    if (!done) return asExported;
    const beside = besideItsData(request.onnxFile, done.model, skeleton.moved > 0 ? weights : null);
    if (beside) return { ...done, model: beside.path, cleanup: beside.cleanup };
    // No folder for the skeleton: inline weights can still be rewritten in memory.
    if (statSync(request.onnxFile).size >= REWRITE_LIMIT_BYTES) return asExported;
    const original = readFileSync(request.onnxFile);
    if (usesExternalData(original)) return asExported;
    const inMemory = rewritten(original, wanted);
    return inMemory ? { ...inMemory, cleanup: () => undefined } : asExported;
  } catch {
    // Not a protobuf this reader understands: onnxruntime reports what is wrong with the file.
    return asExported;
  }
}

/**
 * Runs the load-time rewrites here, for a session another thread creates: a worker's open then
 * skips them, so they overlap the worker's start. Null when nothing applies or the rewritten
 * graph cannot be a file (the worker then does what it would have done); `cleanup` removes the
 * folder once the session exists.
 */
export function prepareModel(request: OpenRequest): { prepared: PreparedModel; cleanup: () => void } | null {
  const source = modelSource(request);
  if (typeof source.model !== 'string' || source.model === request.onnxFile) {
    source.cleanup();
    return null;
  }
  const { cleanup, ...prepared } = source;
  return { prepared: prepared as PreparedModel, cleanup };
}

/** The name of the hard link to the original file beside a skeleton (its weights' location). */
const WEIGHTS_LINK_PREFIX = '.lse-weights-';

/** What a session is created from, and what to remove once it is. */
interface ModelSource {
  model: string | Uint8Array;
  names: IncrementalCacheNames | null;
  scores: InGraphScoreNames | null;
  logitsToKeepAdded: boolean;
  batchCouplingOp: string | null;
  cleanup: () => void;
}

/**
 * Writes `bytes` under `onnxFile`'s name into a new temporary folder that also holds a hard link
 * to every other file of the model's folder, so relative external-data locations resolve
 * (onnxruntime refuses symbolic links that lead out of the model's folder). The folder goes in
 * the system's temp folder, or in the model's own folder where the two are different file
 * systems; null where neither works (the model then runs as exported). onnxruntime reads the
 * weights while the session is created, after which the folder can go.
 */
function besideItsData(onnxFile: string, bytes: Uint8Array, weightsLink: string | null): { path: string; cleanup: () => void } | null {
  const from = dirname(onnxFile);
  for (const parent of [tmpdir(), from]) {
    let dir: string;
    try {
      dir = mkdtempSync(join(parent, '.lse-rewritten-'));
    } catch {
      continue;
    }
    const cleanup = () => rmSync(dir, { recursive: true, force: true });
    try {
      for (const entry of readdirSync(from, { withFileTypes: true })) {
        if (entry.isFile() && entry.name !== basename(onnxFile)) linkSync(join(from, entry.name), join(dir, entry.name));
      }
      if (weightsLink) linkSync(onnxFile, join(dir, weightsLink));
      const path = join(dir, basename(onnxFile));
      writeFileSync(path, bytes);
      return { path, cleanup };
    } catch {
      cleanup();
    }
  }
  return null;
}

type Meta = { name: string; isTensor: boolean; type?: string; shape?: ReadonlyArray<number | string> };

/**
 * The session as discoverGraph must see it: a rewritten graph's sequence-major past inputs under
 * their original names and shapes, without the added new-row outputs and in-graph scores.
 */
function asExported(session: InferenceSession, source: ModelSource): InferenceSession {
  if (!source.names && !source.scores) return session;
  const added = (name: string) => name.startsWith(IN_GRAPH_SCORES_PREFIX);
  const inputs = (session.inputMetadata as readonly Meta[]).filter((m) => !added(m.name)).map((m) =>
    source.names && m.name.endsWith(SEQ_MAJOR_SUFFIX)
      ? { ...m, name: m.name.slice(0, -SEQ_MAJOR_SUFFIX.length), shape: m.shape && [m.shape[0]!, m.shape[2]!, m.shape[1]!, m.shape[3]!] }
      : m,
  );
  const outputs = (session.outputMetadata as readonly Meta[]).filter((m) => !added(m.name) && !(source.names && m.name.endsWith(NEW_ROWS_SUFFIX)));
  return { inputMetadata: inputs, outputMetadata: outputs, inputNames: inputs.map((m) => m.name), outputNames: outputs.map((m) => m.name) } as unknown as InferenceSession;
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

/** The KV-cache sizes config.json implies, checked against what the graph declares. */
function cacheSizes(config: Record<string, unknown>, graph: GraphContract, onnxFile: string): { numKeyValueHeads: number; headDim: number } {
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
  return { numKeyValueHeads: kvHeads ?? 0, headDim: headDim ?? 0 };
}

/**
 * Opens the session, discovers its contract and returns a runner for it. On failure the
 * session is released before the error is thrown.
 */
/** What the session needs of the tokenizer, which may still be loading while the session is created. */
export interface TokenizerFacts {
  tokenizerIds: number;
  tokenCount: number;
}

/**
 * Opens the session; the tokenizer's facts come with the request, or from `facts` (awaited only
 * once the session exists, so the tokenizer can load meanwhile). `started` is the creation
 * of the prepared graph a worker began before importing this module.
 */
export async function openSession(request: OpenRequest, onWarning: (message: string) => void, facts?: Promise<TokenizerFacts>, started?: Promise<CreatedSession> | null): Promise<{ runner: SessionRunner; opened: OpenedModel }> {
  const { onnxFile } = request;
  // A prepared graph belongs to the thread that wrote it, which removes it.
  let source: ModelSource = request.prepared ? { ...request.prepared, cleanup: () => undefined } : modelSource(request);
  let created;
  try {
    created = await (started ?? createModelSession(source.model, onnxFile, { ...request.execution, onWarning }, source.names !== null));
  } catch (error) {
    // A rewritten graph that onnxruntime would not load from its temporary folder (weights in
    // a subfolder...): the graph as exported reports its own problems, or runs.
    if (typeof source.model !== 'string' || source.model === onnxFile) throw error;
    source.cleanup();
    source = { model: onnxFile, names: null, scores: null, logitsToKeepAdded: false, batchCouplingOp: null, cleanup: () => undefined };
    created = await createModelSession(source.model, onnxFile, { ...request.execution, onWarning }, false);
  } finally {
    source.cleanup();
  }
  const { names, scores } = source;
  const { session, resolved } = created;
  try {
    const { tokenizerIds, tokenCount } = request.tokenizerIds !== undefined && request.tokenCount !== undefined ? { tokenizerIds: request.tokenizerIds, tokenCount: request.tokenCount } : await facts!;
    const graph = discoverGraph(asExported(session, source), onnxFile);
    const sizes = cacheSizes(request.config, graph, onnxFile);
    const settings = {
      name: request.name,
      ...sizes,
      tokenizerIds,
      tokenCount,
      checkLogits: request.checkLogits,
      logitsBudgetBytes: request.logitsBudgetBytes ?? DEFAULT_LOGITS_BUDGET_BYTES,
      batchPasses: request.batchPasses ?? true,
      batchCouplingOp: source.batchCouplingOp,
    };
    // The logits width: declared by the graph, else measured with one token (the probe must not
    // reject a narrow width itself: that is what is measured).
    let vocabSize = graph.logitsVocabSize;
    if (vocabSize === null) {
      const probe = new SessionRunner(session, graph, { ...settings, tokenizerIds: 1, tokenCount: Number.MAX_SAFE_INTEGER, checkLogits: false }, async () => undefined, names, scores);
      vocabSize = (await probe.forward([0], 1)).width;
    }
    const runner = new SessionRunner(session, graph, settings, releaseSession, names, scores, onWarning);
    return { runner, opened: { graph, providers: resolved, ...sizes, vocabSize, incrementalCache: names !== null, inGraphTopK: scores !== null, logitsToKeepAdded: source.logitsToKeepAdded } };
  } catch (error) {
    await releaseSession(session as InferenceSession);
    throw error;
  }
}
