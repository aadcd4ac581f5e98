/**
 * The tokenizer's public types: its kind, chat messages, encode options, offsets and load options.
 * @module
 */
/** How vocabulary strings map to bytes. */
export type TokenizerKind = 'byte-level' | 'sentencepiece' | 'other';

/** One chat message, in the shape chat templates expect. */
export interface ChatMessage {
  /** `system`, `user`, `assistant` or `tool`. */
  role: string;
  /** Text content. */
  content: string;
  /** Tool calls made by an assistant message. */
  tool_calls?: Array<{ id?: string; type?: 'function'; function: { name: string; arguments: string | Record<string, unknown> } }>;
  /** Id of the call a `tool` message answers. */
  tool_call_id?: string;
  /** Tool name for `tool` messages (some templates use it). */
  name?: string;
}

/** Options of {@link TextTokenizer.encode}. */
export interface EncodeOptions {
  /** Add BOS/EOS the way the tokenizer's post-processor does (default false). */
  addSpecialTokens?: boolean;
  /**
   * Let special-token strings in the text (`<|im_end|>`, `</s>`...) become control tokens.
   * Default false: user text is tokenized as plain text, so it cannot inject control tokens.
   */
  allowSpecialTokens?: boolean;
  /**
   * With `allowSpecialTokens`: character ranges `[start, end)` of `text` (message contents
   * inside a rendered chat template) where special-token strings stay plain text.
   */
  plainSpans?: ReadonlyArray<readonly [number, number]>;
}

/** Byte offsets of each token of a text. */
export interface TokenOffsets {
  /** Token ids (no special tokens added). */
  ids: number[];
  /** Byte offset in `bytes` where each token starts. */
  starts: Int32Array;
  /** Byte offset in `bytes` where each token ends (exclusive); `ends[i] === starts[i+1]`. */
  ends: Int32Array;
  /** UTF-8 bytes of the input text; `bytes.subarray(starts[i], ends[i])` concatenate to it. */
  bytes: Uint8Array;
}

/** Options for loading a tokenizer from a folder. */
export interface TokenizerLoadOptions {
  /** Parsed `generation_config.json`, if any: its `eos_token_id`/`bos_token_id` are honoured. */
  generationConfig?: Record<string, unknown> | null;
  /** Parsed `config.json`, if any: its `eos_token_id`/`bos_token_id` are honoured. */
  modelConfig?: Record<string, unknown> | null;
}

/** A Unicode normalization form a tokenizer applies. */
export type NormalForm = 'NFC' | 'NFD' | 'NFKC' | 'NFKD';
