/**
 * Discovers a causal LM's input/output contract from the ONNX session instead of assuming it.
 * @module
 */
import { UnsupportedGraphError } from '../errors.js';
import type { InferenceSession } from './ort.js';

/** Element type of the KV cache tensors. */
export type CacheDType = 'float32' | 'float16';

/** What the runtime learned about a decoder graph. */
export interface GraphContract {
  /** Whether the graph takes `attention_mask`. */
  hasAttentionMask: boolean;
  /** Whether the graph takes `position_ids`. */
  hasPositionIds: boolean;
  /** Name of the logits-trimming input (`num_logits_to_keep` / `logits_to_keep`), if any. */
  logitsToKeepInput: string | null;
  /** Whether the graph is a merged decoder with a `use_cache_branch` input. */
  hasUseCacheBranch: boolean;
  /** Number of layers with KV cache inputs (0 = no cache: full recompute every step). */
  numCacheLayers: number;
  /** Input names of the past keys/values, in layer order: `[key, value]` per layer. */
  pastNames: Array<[string, string]>;
  /** Output names of the present keys/values, in layer order. */
  presentNames: Array<[string, string]>;
  /** Element type of the cache tensors. */
  cacheDType: CacheDType;
  /** Element type of the logits output. */
  logitsDType: 'float32' | 'float16';
  /** Vocabulary dimension of `logits` when the graph states it, else null. */
  logitsVocabSize: number | null;
  /** Fixed KV-head / head-dim sizes the graph declares (null where symbolic). */
  declaredCacheDims: { heads: number | null; headDim: number | null };
  /** Declared type of `input_ids` (int64 for Optimum exports). */
  idsDType: 'int64' | 'int32';
  /** Whether `input_ids` declares a batch axis that is not fixed (so several sequences can run in one pass). */
  batchAxis: boolean;
}

interface TensorMeta {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}

const PAST_RE = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT_RE = /^present\.(\d+)\.(key|value)$/;
/** Inputs that carry recurrent state this runtime cannot crop (Mamba, RWKV, conv caches...). */
const STATE_RE = /(^|[._])(ssm|conv|recurrent|rwkv|state|cache_params|past_conv|past_ssm|cache_position)/i;
const KNOWN_INPUTS = new Set(['input_ids', 'attention_mask', 'position_ids', 'use_cache_branch', 'num_logits_to_keep', 'logits_to_keep']);

/**
 * Reads the session's inputs and outputs and returns the contract, or throws
 * {@link UnsupportedGraphError} naming what is missing or unknown.
 */
export function discoverGraph(session: InferenceSession, file: string): GraphContract {
  const inputs = (session.inputMetadata as readonly TensorMeta[]) ?? session.inputNames.map((name) => ({ name, isTensor: true }));
  const outputs = (session.outputMetadata as readonly TensorMeta[]) ?? session.outputNames.map((name) => ({ name, isTensor: true }));
  const inputByName = new Map(inputs.map((m) => [m.name, m]));
  const outputByName = new Map(outputs.map((m) => [m.name, m]));

  if (!inputByName.has('input_ids')) {
    const hint = inputByName.has('inputs_embeds') ? ' (it takes inputs_embeds: export the decoder with input_ids, as Optimum does for text generation)' : '';
    throw new UnsupportedGraphError(`${file}: the graph has no "input_ids" input${hint}. Inputs found: ${[...inputByName.keys()].join(', ')}.`);
  }
  const logits = outputByName.get('logits');
  if (!logits) {
    throw new UnsupportedGraphError(`${file}: the graph has no "logits" output, so it is not a causal LM head. Outputs found: ${[...outputByName.keys()].join(', ')}. Export with a language-modeling head (e.g. optimum "text-generation-with-past").`);
  }

  const past = new Map<number, { key?: string; value?: string }>();
  const unknown: string[] = [];
  for (const m of inputs) {
    const match = PAST_RE.exec(m.name);
    if (match) {
      const entry = past.get(Number(match[1])) ?? {};
      entry[match[2] as 'key' | 'value'] = m.name;
      past.set(Number(match[1]), entry);
    } else if (!KNOWN_INPUTS.has(m.name)) unknown.push(m.name);
  }
  const stateful = unknown.filter((n) => STATE_RE.test(n));
  if (stateful.length > 0) {
    throw new UnsupportedGraphError(`${file}: the graph carries recurrent/state inputs (${stateful.join(', ')}) that cannot be cropped; only transformer decoders with past_key_values.{i}.key/value caches are supported.`);
  }
  if (unknown.length > 0) {
    throw new UnsupportedGraphError(`${file}: unknown graph inputs ${unknown.join(', ')}. Supported: input_ids, attention_mask, position_ids, past_key_values.{i}.key/value, use_cache_branch, num_logits_to_keep/logits_to_keep.`);
  }

  const layers = [...past.keys()].sort((a, b) => a - b);
  layers.forEach((layer, i) => {
    if (layer !== i) throw new UnsupportedGraphError(`${file}: past_key_values layers are not numbered 0..${layers.length - 1} (found layer ${layer} at position ${i}).`);
  });
  const pastNames: Array<[string, string]> = [];
  const presentNames: Array<[string, string]> = [];
  for (const layer of layers) {
    const entry = past.get(layer)!;
    if (!entry.key || !entry.value) {
      throw new UnsupportedGraphError(`${file}: layer ${layer} has ${entry.key ? 'a key' : 'a value'} cache input but no ${entry.key ? 'value' : 'key'}; unknown cache layout.`);
    }
    pastNames.push([entry.key, entry.value]);
    const pk = `present.${layer}.key`;
    const pv = `present.${layer}.value`;
    if (!outputByName.has(pk) || !outputByName.has(pv)) {
      throw new UnsupportedGraphError(`${file}: past_key_values.${layer}.* inputs exist but outputs ${pk}/${pv} do not; unknown cache layout (outputs: ${[...outputByName.keys()].join(', ')}).`);
    }
    presentNames.push([pk, pv]);
  }
  const strayPresent = [...outputByName.keys()].filter((n) => PRESENT_RE.test(n) && !presentNames.some(([k, v]) => k === n || v === n));
  if (strayPresent.length > 0 && pastNames.length > 0) {
    throw new UnsupportedGraphError(`${file}: outputs ${strayPresent.join(', ')} have no matching past_key_values inputs; unknown cache layout.`);
  }

  let cacheDType: CacheDType = 'float32';
  let heads: number | null = null;
  let headDim: number | null = null;
  if (pastNames.length > 0) {
    const meta = inputByName.get(pastNames[0]![0])!;
    if (meta.type === 'float16') cacheDType = 'float16';
    else if (meta.type && meta.type !== 'float32') {
      throw new UnsupportedGraphError(`${file}: cache tensors are ${meta.type}; only float32 and float16 caches are supported.`);
    }
    const shape = meta.shape ?? [];
    if (shape.length !== 4) {
      throw new UnsupportedGraphError(`${file}: ${meta.name} has rank ${shape.length}; expected [batch, kv_heads, past_length, head_dim].`);
    }
    heads = typeof shape[1] === 'number' ? shape[1] : null;
    headDim = typeof shape[3] === 'number' ? shape[3] : null;
  }
  const logitsShape = logits.shape ?? [];
  const lastDim = logitsShape[logitsShape.length - 1];
  const idsMeta = inputByName.get('input_ids')!;
  const idsType = idsMeta.type;
  const batchDim = idsMeta.shape?.[0];
  return {
    hasAttentionMask: inputByName.has('attention_mask'),
    hasPositionIds: inputByName.has('position_ids'),
    logitsToKeepInput: inputByName.has('num_logits_to_keep') ? 'num_logits_to_keep' : inputByName.has('logits_to_keep') ? 'logits_to_keep' : null,
    hasUseCacheBranch: inputByName.has('use_cache_branch'),
    numCacheLayers: pastNames.length,
    pastNames,
    presentNames,
    cacheDType,
    logitsDType: logits.type === 'float16' ? 'float16' : 'float32',
    logitsVocabSize: typeof lastDim === 'number' ? lastDim : null,
    declaredCacheDims: { heads, headDim },
    idsDType: idsType === 'int32' ? 'int32' : 'int64',
    batchAxis: idsMeta.shape !== undefined && idsMeta.shape.length === 2 && (typeof batchDim !== 'number' || batchDim < 0),
  };
}
