/**
 * Tokenizer wrapper over transformers.js's tokenizer and template engines
 * (`@huggingface/tokenizers`, `@huggingface/jinja`, the pieces its `PreTrainedTokenizer` is made
 * of, used directly so loading a tokenizer does not load transformers.js's image and audio
 * stack): encode/decode, special ids, chat templates and byte-exact token offsets for
 * byte-level BPE, sentencepiece (`▁`, `<0xNN>`) and normalizing tokenizers.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidArgumentError, TokenizerError } from '../errors.js';
import { byteLevelDecoderTable, bytesEqual, concatBytes, fromUtf8, utf8 } from './bytes.js';
import { compileTemplate, renderChatTemplate } from './chatTemplate.js';
import { streamAlignment } from './streamAlignment.js';
import { BYTE_FALLBACK, decoderKind, normalFormOf, readJson, specialIdsOf, TEMPLATE_TOKEN_NAMES, tokenContent, validUtf8, vocabularyFacts, type TokenizerJson } from './tokenizerFiles.js';
import type { ChatMessage, EncodeOptions, NormalForm, TokenizerKind, TokenizerLoadOptions, TokenOffsets } from './tokenizerTypes.js';

export type { TokenizerKind, ChatMessage, EncodeOptions, TokenOffsets, TokenizerLoadOptions } from './tokenizerTypes.js';

/**
 * A model's tokenizer: transformers.js's tokenizer engine underneath, plus the byte-level view SAFE needs.
 *
 * @example
 * ```ts
 * const tok = await TextTokenizer.fromFolder('./models/qwen-tiny');
 * const { ids, starts, ends, bytes } = tok.offsets('Hello wörld');
 * ```
 */
export class TextTokenizer {
  /** Number of token ids (highest id + 1, added tokens included). */
  readonly vocabSize: number;
  /** How vocabulary strings map to bytes. */
  readonly kind: TokenizerKind;
  /** BOS id, or null when the tokenizer has none. */
  readonly bosTokenId: number | null;
  /** Every id that ends generation (tokenizer_config, generation_config and config.json merged). */
  readonly eosTokenIds: readonly number[];
  /** Padding id, or null. */
  readonly padTokenId: number | null;
  /** Ids of special (control) tokens. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** The Jinja chat template, or null when the tokenizer has none. */
  readonly chatTemplate: string | null;

  /**
   * Ids a model can produce: the tokenizer's ids, or fewer when special tokens above the model's
   * logits width were added (Gemma 3's `<image_soft_token>`): see {@link limitToModel}.
   */
  get producibleIds(): number {
    return this.producible;
  }

  private producible: number;
  private readonly hf: Tokenizer;
  private readonly makePlain: () => Tokenizer;
  private plain: Tokenizer | null = null;
  private readonly addedIds: Set<number>;
  /** The chat template's variables taken from tokenizer_config.json (bos_token, eos_token...). */
  private readonly templateTokens: Record<string, string>;
  private compiledTemplate: Template | null = null;
  private readonly byteCache: Array<Uint8Array | undefined>;
  /** Strings of the control tokens, longest first (see {@link controlTokenStrings}). */
  private readonly controlStrings: string[];
  /** Id of each control string. */
  private readonly controlIds: Map<string, number>;
  private readonly byteDecoder: Map<string, number> | null;
  /** byte → vocabulary character of a byte-level BPE (the inverse of byteDecoder). */
  private readonly byteEncoder: string[] | null;
  /** @internal The Unicode normalization the tokenizer applies (for offsets). */
  readonly normalForm: NormalForm | null;
  private readonly prefixSpace: { plain: boolean; afterSpace: boolean };

  private constructor(json: TokenizerJson, config: Record<string, unknown>, opts: TokenizerLoadOptions) {
    this.hf = new Tokenizer(json, config);
    const template = config.chat_template;
    this.chatTemplate = typeof template === 'string' ? template : Array.isArray(template) ? ((template.find((t: { name?: string }) => t.name === 'default') as { template?: string } | undefined)?.template ?? null) : null;
    // Control tokens: the special ones, and the added tokens the chat template itself writes
    // (Qwen's <tool_call>, <tool_response>, <think> are "non-special" added tokens, yet markers).
    // Other added tokens (Gemma's whitespace runs, <unusedN>...) are ordinary text pieces.
    const control = (json.added_tokens ?? []).filter((t) => t.special || (this.chatTemplate !== null && t.content.length > 1 && this.chatTemplate.includes(t.content)));
    this.controlStrings = [...new Set(control.map((t) => t.content))].sort((a, b) => b.length - a.length);
    this.controlIds = new Map(control.map((t) => [t.content, t.id]));
    // A second instance that knows no control tokens: caller text encoded with it can never
    // produce one. Built lazily, only for text that contains a control string.
    const controlSet = new Set(this.controlStrings);
    this.makePlain = () => new Tokenizer({ ...json, added_tokens: (json.added_tokens ?? []).filter((t) => !controlSet.has(t.content)) }, config);
    this.templateTokens = {};
    for (const name of TEMPLATE_TOKEN_NAMES) {
      const content = tokenContent(config[name]);
      if (content) this.templateTokens[name] = content;
    }

    const { size, special, addedIds } = vocabularyFacts(json);
    this.addedIds = addedIds;
    this.vocabSize = size;
    this.producible = size;
    this.byteCache = new Array(size);
    this.specialTokenIds = special;
    this.kind = decoderKind(json);
    this.byteDecoder = this.kind === 'byte-level' ? byteLevelDecoderTable() : null;
    if (this.byteDecoder) {
      const encoder: string[] = new Array(256);
      for (const [ch, b] of this.byteDecoder) encoder[b] = ch;
      this.byteEncoder = encoder;
    } else this.byteEncoder = null;
    this.normalForm = normalFormOf(json);

    const ids = specialIdsOf(config, opts, (content) => this.tokenToId(content));
    this.bosTokenId = ids.bos;
    this.eosTokenIds = ids.eos;
    this.padTokenId = ids.pad;
    // Sentencepiece tokenizers prepend a dummy `▁` to the text (sometimes only when it does
    // not already start with a space). Measure it instead of guessing from the config.
    this.prefixSpace = { plain: false, afterSpace: false };
    const probe = (text: string) => fromUtf8(this.idsToBytes(this.hf.encode(text, { add_special_tokens: false }).ids));
    this.prefixSpace = { plain: probe('a') === ' a', afterSpace: probe(' a') === '  a' };
  }

  /**
   * Loads `tokenizer.json`, `tokenizer_config.json` (and `chat_template.jinja` if present)
   * from a model folder.
   */
  static async fromFolder(dir: string, opts: TokenizerLoadOptions = {}): Promise<TextTokenizer> {
    const json = readJson(join(dir, 'tokenizer.json'), 'tokenizer.json') as TokenizerJson;
    const config = readJson(join(dir, 'tokenizer_config.json'), 'tokenizer_config.json');
    const templateFile = join(dir, 'chat_template.jinja');
    if (existsSync(templateFile)) config.chat_template = readFileSync(templateFile, 'utf8');
    return TextTokenizer.fromJson(json, config, opts);
  }

  /** Builds a tokenizer from already-parsed tokenizer.json and tokenizer_config.json objects. */
  static fromJson(json: unknown, config: Record<string, unknown>, opts: TokenizerLoadOptions = {}): TextTokenizer {
    const j = json as TokenizerJson;
    if (!j || typeof j !== 'object' || !j.model) {
      throw new TokenizerError('tokenizer.json has no "model" section; it is not a Hugging Face tokenizers file.');
    }
    // transformers.js's per-model tokenizer classes (Qwen2Tokenizer, LlamaTokenizer...) add
    // nothing to encoding, decoding or templates for decoder LLMs: the engine itself is enough.
    try {
      return new TextTokenizer(j, config, opts);
    } catch (cause) {
      if (cause instanceof TokenizerError) throw cause;
      throw new TokenizerError(`transformers.js could not build the tokenizer (${(cause as Error).message}). Check tokenizer.json/tokenizer_config.json.`, { cause });
    }
  }

  /** Id of a vocabulary string (raw form, e.g. `ĠHello` or `▁Hello`), or null. */
  tokenToId(token: string): number | null {
    // Added tokens win over same-named base entries (the engine's table is built that way).
    return this.hf.token_to_id(token) ?? null;
  }

  /** One more than the highest id that is not a special token: the logits width a model needs at least. */
  get ordinaryIds(): number {
    let n = this.vocabSize;
    while (n > 0 && this.specialTokenIds.has(n - 1)) n--;
    return n;
  }

  /**
   * Limits the ids to a model's logits width: the special tokens at or above it can never be
   * produced, so lookups never return them (they are out of every distribution, never drafted).
   * Only trailing special tokens may be cut off.
   */
  limitToModel(width: number): void {
    if (width < this.ordinaryIds) throw new TokenizerError(`the tokenizer has ordinary tokens up to id ${this.ordinaryIds - 1}, beyond a logits width of ${width}.`);
    this.producible = Math.min(this.vocabSize, width);
  }

  /**
   * The id whose {@link tokenBytes} are exactly `bytes`, or null: looked up through the
   * engine's own string → id table (no index of its own). An ordinary vocabulary entry wins over
   * a byte-fallback token (`<0x41>` for `A`) and over a special token with the same text.
   */
  idOfBytes(bytes: Uint8Array): number | null {
    if (bytes.length === 0) return null;
    const matches = (id: number | null): id is number => id !== null && id < this.producible && bytesEqual(this.tokenBytes(id), bytes);
    const text = validUtf8(bytes);
    const candidates: Array<string | null> = [];
    if (this.byteEncoder) candidates.push(Array.from(bytes, (b) => this.byteEncoder![b]!).join(''));
    else if (this.kind === 'sentencepiece' && text !== null) candidates.push(text.replaceAll(' ', '\u2581'));
    // Added tokens are literal text (and 'other' vocabularies are plain strings).
    candidates.push(text);
    let weak: number | null = null;
    for (const c of candidates) {
      if (c === null) continue;
      const id = this.tokenToId(c);
      if (!matches(id)) continue;
      if (!this.specialTokenIds.has(id)) return id;
      weak ??= id;
    }
    if (this.kind === 'sentencepiece' && bytes.length === 1) {
      const hex = bytes[0]!.toString(16).toUpperCase().padStart(2, '0');
      const id = this.tokenToId(`<0x${hex}>`);
      if (matches(id)) return id;
    }
    return weak;
  }

  /** Raw vocabulary string of an id (`ĠHello`, `▁Hello`, `<0x0A>`, `<|im_end|>`). */
  tokenString(id: number): string {
    const t = Number.isInteger(id) && id >= 0 ? this.hf.id_to_token(id) : undefined;
    if (t === undefined) throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1}).`);
    return t;
  }

  /** True for special (control) tokens such as BOS/EOS/chat markers. */
  isSpecial(id: number): boolean {
    return this.specialTokenIds.has(id);
  }

  /** True when `id` ends generation. */
  isEos(id: number): boolean {
    return this.eosTokenIds.includes(id);
  }

  /**
   * The exact bytes a token stands for (`Ġ` → space, `▁` → space, `<0x0A>` → newline).
   * Special tokens map to the UTF-8 of their text. Cached per id.
   */
  tokenBytes(id: number): Uint8Array {
    const cached = this.byteCache[id];
    if (cached) return cached;
    const token = this.tokenString(id);
    let bytes: Uint8Array;
    if (this.addedIds.has(id)) {
      // Added tokens are literal text; sentencepiece vocabularies still spell spaces as ▁ in
      // them (Gemma's whitespace-run tokens "▁▁"...), which the decoder turns into spaces.
      bytes = utf8(this.kind === 'sentencepiece' && !this.specialTokenIds.has(id) ? token.replaceAll('\u2581', ' ') : token);
    }
    else if (this.byteDecoder) {
      const out: number[] = [];
      for (const ch of token) {
        const b = this.byteDecoder.get(ch);
        if (b === undefined) out.push(...utf8(ch));
        else out.push(b);
      }
      bytes = Uint8Array.from(out);
    } else if (this.kind === 'sentencepiece') {
      const m = BYTE_FALLBACK.exec(token);
      bytes = m ? Uint8Array.of(parseInt(m[1]!, 16)) : utf8(token.replaceAll('\u2581', ' '));
    } else bytes = utf8(token);
    this.byteCache[id] = bytes;
    return bytes;
  }

  /** Concatenated bytes of a token sequence. */
  idsToBytes(ids: readonly number[]): Uint8Array {
    return concatBytes(ids.map((id) => this.tokenBytes(id)));
  }

  /** Encodes text. By default no BOS/EOS are added and special-token strings stay plain text. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const add = options.addSpecialTokens ?? false;
    if (options.allowSpecialTokens && options.plainSpans) {
      // A rendered template already holds its BOS/EOS markers.
      if (add) throw new InvalidArgumentError('plainSpans', 'encode(): plainSpans is for rendered chat templates and cannot be combined with addSpecialTokens.');
      return this.encodeOutsideSpans(text, options.plainSpans);
    }
    if (options.allowSpecialTokens || !this.mayHitControlToken(text)) {
      return this.hf.encode(text, { add_special_tokens: add }).ids;
    }
    this.plain ??= this.makePlain();
    return this.plain.encode(text, { add_special_tokens: add }).ids;
  }

  /**
   * Splits `text` at the special-token strings that lie outside `plainSpans` (those become
   * control tokens) and encodes the pieces in between as plain text, as the tokenizer itself
   * does at added tokens; special strings inside the spans stay text.
   */
  private encodeOutsideSpans(text: string, plainSpans: ReadonlyArray<readonly [number, number]>): number[] {
    // Pieces without a control string encode the same with either instance; the one without
    // control tokens (a second copy of the vocabulary) is built only when a piece needs it.
    const encodePlain = (piece: string) => {
      if (!this.mayHitControlToken(piece)) return this.hf.encode(piece, { add_special_tokens: false }).ids;
      this.plain ??= this.makePlain();
      return this.plain.encode(piece, { add_special_tokens: false }).ids;
    };
    // Longest first, so a control string that extends another wins.
    const specials = this.controlStrings;
    const insidePlain = (from: number, to: number) => plainSpans.some(([a, b]) => from < b && to > a);
    const ids: number[] = [];
    let piece = 0;
    for (let i = 0; i < text.length; ) {
      const s = specials.find((x) => text.startsWith(x, i));
      if (s === undefined || insidePlain(i, i + s.length)) {
        i++;
        continue;
      }
      if (piece < i) ids.push(...encodePlain(text.slice(piece, i)));
      ids.push(this.specialIdOf(s));
      i += s.length;
      piece = i;
    }
    if (piece < text.length) ids.push(...encodePlain(text.slice(piece)));
    return ids;
  }

  private specialIdOf(s: string): number {
    const id = this.controlIds.get(s);
    if (id === undefined) throw new TokenizerError(`control token ${JSON.stringify(s)} has no id.`);
    return id;
  }

  /**
   * Strings that encode to control tokens when special tokens are allowed: every special token
   * (`<|im_end|>`, `</s>`...) and the added tokens the chat template writes as markers
   * (`<tool_call>`...). Longest first.
   */
  get controlTokenStrings(): readonly string[] {
    return this.controlStrings;
  }

  /** True when `text` contains the string of a control token (e.g. `<|im_end|>`, `<tool_call>`). */
  containsSpecialString(text: string): boolean {
    for (const s of this.controlStrings) if (text.includes(s)) return true;
    return false;
  }

  /**
   * True when encoding `text` with the control tokens known could produce one: the text holds a
   * control string as it is, or once normalized (added tokens may match the normalized text).
   */
  private mayHitControlToken(text: string): boolean {
    if (this.controlStrings.length === 0) return false;
    if (this.containsSpecialString(text)) return true;
    // ASCII text is its own NFKC form: normalize (a pass over the text) only when it could change.
    return !/^[\x00-\x7f]*$/.test(text) && this.containsSpecialString(text.normalize('NFKC'));
  }

  /** Decodes ids to text (transformers.js semantics). */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    if (!ids.every((id) => Number.isInteger(id))) throw new InvalidArgumentError('ids', `decode() needs integer token ids, got ${ids.find((id) => !Number.isInteger(id))}.`);
    return this.hf.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Number of dummy-prefix space bytes the tokenizer adds in front of `text` encoded on its own. */
  dummyPrefixBytes(text: string): number {
    return (text.startsWith(' ') ? this.prefixSpace.afterSpace : this.prefixSpace.plain) ? 1 : 0;
  }

  /**
   * Tokenizes `text` (as plain text, no special tokens) and returns each token's byte span
   * in the UTF-8 of `text`. The spans tile the input exactly, also when the tokenizer adds a
   * dummy prefix space or normalizes (NFC...) the text; a token that ends inside a
   * normalized cluster is snapped to the end of that cluster.
   */
  offsets(text: string): TokenOffsets {
    const ids = this.encode(text);
    const bytes = utf8(text);
    const ends = this.tokenEnds(ids, text, bytes);
    const starts = new Int32Array(ids.length);
    for (let i = 1; i < ids.length; i++) starts[i] = ends[i - 1]!;
    return { ids, starts, ends, bytes };
  }

  /**
   * End byte offset, in `bytes` (the UTF-8 of `text`), of each token of `ids`, which must be an
   * encoding of `text`. Monotone; the last one is `bytes.length`.
   */
  tokenEnds(ids: readonly number[], text: string, bytes: Uint8Array = utf8(text), exact?: { upTo: number }): Int32Array {
    if (this.kind === 'other') {
      throw new TokenizerError('byte offsets need a byte-level BPE or sentencepiece tokenizer; this tokenizer.json decoder is neither.');
    }
    const n = ids.length;
    const ends = new Int32Array(n);
    const stream = this.idsToBytes(ids);
    const aligned = bytesEqual(stream, bytes) ? null : streamAlignment(this, text, bytes, stream);
    const map = aligned?.map ?? null;
    if (exact) exact.upTo = aligned ? aligned.exactUpTo : bytes.length;
    let pos = 0;
    let prev = 0;
    for (let i = 0; i < n; i++) {
      pos += this.tokenBytes(ids[i]!).length;
      prev = Math.max(prev, map ? map(pos) : pos);
      ends[i] = i === n - 1 ? bytes.length : prev;
    }
    return ends;
  }

  /**
   * Renders chat messages with the tokenizer's chat template.
   * @throws TokenizerError when the tokenizer has no chat template.
   */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: { tools?: unknown[]; addGenerationPrompt?: boolean; templateKwargs?: Record<string, unknown> } = {},
  ): string {
    if (!this.chatTemplate) {
      throw new TokenizerError('this tokenizer has no chat template (tokenizer_config.json "chat_template" or chat_template.jinja). Add one, or pass a raw string prompt with rawPrompt: true.');
    }
    this.compiledTemplate ??= compileTemplate(this.chatTemplate);
    return renderChatTemplate(this.compiledTemplate, messages, options, this.templateTokens);
  }
}
