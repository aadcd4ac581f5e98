/**
 * Reading a tokenizer's files: tokenizer.json and tokenizer_config.json as JSON, with the
 * small field readers the tokenizer's constructor uses.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { ModelFileInvalidError, ModelFileMissingError, TokenizerError } from '../errors.js';
import type { NormalForm, TokenizerKind, TokenizerLoadOptions } from './tokenizerTypes.js';

/** tokenizer_config.json entries a chat template sees by name (as transformers.js passes them). */
export const TEMPLATE_TOKEN_NAMES = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

/** transformers.js's apply_chat_template options that are not template variables. */
export const NON_TEMPLATE_OPTIONS = new Set(['chat_template', 'tokenize', 'padding', 'truncation', 'max_length', 'return_tensor', 'return_dict', 'tokenizer_kwargs']);

export type TokenizerJson = {
  model?: { type?: string; vocab?: Record<string, number> | Array<[string, number]> };
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  normalizer?: unknown;
  decoder?: unknown;
};

export const BYTE_FALLBACK = /^<0x([0-9A-Fa-f]{2})>$/;

// ignoreBOM keeps a leading U+FEFF: some vocabularies have tokens that start with one.
export const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of `bytes` when they are valid UTF-8, else null. */
export function validUtf8(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

export function readJson(path: string, what: string): Record<string, unknown> {
  if (!existsSync(path)) {
    throw new ModelFileMissingError(path, `${what} not found at ${path}. A model folder needs tokenizer.json and tokenizer_config.json (Hugging Face layout).`);
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new ModelFileInvalidError(path, `${what} at ${path} is not valid JSON (${(cause as Error).message}). Re-export or re-download the file.`, { cause });
  }
}

/** Collects every `type` named anywhere inside a tokenizer.json component. */
export function componentTypes(node: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(node)) node.forEach((n) => componentTypes(n, out));
  else if (node && typeof node === 'object') {
    const rec = node as Record<string, unknown>;
    if (typeof rec.type === 'string') out.add(rec.type);
    for (const v of Object.values(rec)) if (v && typeof v === 'object') componentTypes(v, out);
  }
  return out;
}

export function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

export function idList(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

/** The vocabulary's size (the engine keeps the id ↔ string tables; only the size is counted here), its special and its added ids. */
export function vocabularyFacts(json: TokenizerJson): { size: number; special: Set<number>; addedIds: Set<number> } {
  let size = 0;
  const vocab = json.model?.vocab;
  if (Array.isArray(vocab)) size = vocab.length;
  else if (vocab) for (const id of Object.values(vocab)) if (id >= size) size = id + 1;
  const special = new Set<number>();
  const addedIds = new Set<number>();
  for (const t of json.added_tokens ?? []) {
    if (t.id >= size) size = t.id + 1;
    addedIds.add(t.id);
    if (t.special) special.add(t.id);
  }
  if (size === 0) throw new TokenizerError('tokenizer.json has an empty vocabulary (model.vocab). Use a complete tokenizer.json.');
  return { size, special, addedIds };
}

/** How the vocabulary's strings map to bytes, from the decoder's components. */
export function decoderKind(json: TokenizerJson): TokenizerKind {
  const types = componentTypes(json.decoder);
  if (types.has('ByteLevel')) return 'byte-level';
  return types.has('ByteFallback') || types.has('Metaspace') || types.has('Replace') ? 'sentencepiece' : 'other';
}

/** The Unicode normalization the normalizer applies (Precompiled sentencepiece maps are NFKC). */
export function normalFormOf(json: TokenizerJson): NormalForm | null {
  const types = componentTypes(json.normalizer);
  return types.has('NFKC') || types.has('Precompiled') ? 'NFKC' : types.has('NFKD') ? 'NFKD' : types.has('NFC') ? 'NFC' : types.has('NFD') ? 'NFD' : null;
}

/**
 * BOS, end-of-sequence and padding ids: generation_config and config.json first, then the
 * tokenizer_config's token strings (every end-of-sequence id of all three, merged).
 */
export function specialIdsOf(config: Record<string, unknown>, opts: TokenizerLoadOptions, idOfString: (content: string) => number | null): { bos: number | null; eos: number[]; pad: number | null } {
  const idOf = (value: unknown): number | null => {
    const content = tokenContent(value);
    return content === null ? null : idOfString(content);
  };
  const gen = opts.generationConfig ?? {};
  const model = opts.modelConfig ?? {};
  const eos = new Set<number>([...idList(gen.eos_token_id), ...idList(model.eos_token_id)]);
  const eosFromConfig = idOf(config.eos_token);
  if (eosFromConfig !== null) eos.add(eosFromConfig);
  return {
    bos: idList(gen.bos_token_id)[0] ?? idList(model.bos_token_id)[0] ?? idOf(config.bos_token) ?? null,
    eos: [...eos],
    pad: idList(gen.pad_token_id)[0] ?? idList(model.pad_token_id)[0] ?? idOf(config.pad_token),
  };
}
