/**
 * Each model renders the prompt through its own chat template and tokenizer.
 * @module
 */
import { ContextOverflowError, InvalidArgumentError, TokenizerError } from '../errors.js';
import type { SequenceModel } from '../member/member.js';
import type { EncodingContext } from '../text/continuation.js';
import type { ChatMessage, TextTokenizer } from '../text/tokenizer.js';

/** A prompt: plain text, or chat messages rendered by each model's chat template. */
export type EnsembleInput = string | readonly ChatMessage[];

/** A prompt as one model sees it. */
export interface ModelPrompt {
  /** The rendered prompt text. */
  text: string;
  /** Its token ids (with BOS / template markers). */
  ids: number[];
  /** What the response follows, for in-context tokenization of the response. */
  context: EncodingContext;
}

/** How a prompt is rendered. */
export interface RenderOptions {
  /** A string prompt is the final text: no chat template. */
  rawPrompt: boolean;
  /** Tools offered to the chat template. */
  tools?: unknown[];
  /** Special-token strings in the caller's text become control tokens (default: they stay text). */
  allowSpecialTokens?: boolean;
}

/** Longest prompt tail kept as tokenization context for the response. */
const CONTEXT_CHARS = 200;

/** Validates an input before any model runs. */
export function validateInput(input: unknown): asserts input is EnsembleInput {
  if (typeof input === 'string') {
    if (input.trim().length === 0) throw new InvalidArgumentError('input', 'input: the prompt is empty; pass a non-empty string or at least one chat message.');
    return;
  }
  if (!Array.isArray(input) || input.length === 0) {
    throw new InvalidArgumentError('input', 'input: pass a non-empty string or a non-empty array of chat messages ({ role, content }).');
  }
  input.forEach((m: unknown, i) => {
    const msg = m as ChatMessage;
    if (!msg || typeof msg !== 'object' || typeof msg.role !== 'string' || typeof msg.content !== 'string') {
      throw new InvalidArgumentError('input', `input[${i}]: each chat message needs a string role and a string content.`);
    }
  });
}

/**
 * Renders `input` for one model: a string goes through the chat template as one user message
 * (or is used as it is with `rawPrompt`, or when the model has no chat template); messages
 * need a chat template.
 */
export function renderPrompt(lm: SequenceModel, input: EnsembleInput, options: RenderOptions & { reserve: number }): ModelPrompt {
  const prompt = renderPromptWith(lm.tokenizer, input, options, lm.name);
  if (prompt.ids.length === 0) throw new InvalidArgumentError('input', `input: the prompt renders to no tokens for model "${lm.name}".`);
  if (prompt.ids.length + options.reserve > lm.maxPositions) {
    throw new ContextOverflowError(
      `model "${lm.name}": the prompt is ${prompt.ids.length} tokens and up to ${options.reserve} more may be generated, beyond its context of ${lm.maxPositions}. Shorten the prompt or lower maxNewTokens.`,
    );
  }
  return prompt;
}

/** {@link renderPrompt} for a bare tokenizer (used by tools that script fixture models). */
export function renderPromptWith(tok: TextTokenizer, input: EnsembleInput, options: RenderOptions, name = 'model'): ModelPrompt {
  if (typeof input === 'string' && (options.rawPrompt || !tok.chatTemplate)) {
    const ids = tok.encode(input, { addSpecialTokens: true, allowSpecialTokens: options.allowSpecialTokens });
    return { text: input, ids, context: { text: plainTail(input), special: null } };
  }
  const messages: ChatMessage[] = typeof input === 'string' ? [{ role: 'user', content: input }] : [...input];
  if (!tok.chatTemplate) {
    throw new TokenizerError(`model "${name}" has no chat template, so it cannot render chat messages. Add chat_template.jinja (or tokenizer_config.json "chat_template") to the model folder, or pass a string prompt with rawPrompt: true.`);
  }
  const { text, plainSpans } = renderKeepingCallerText(tok, messages, options.tools, options.allowSpecialTokens ?? false);
  const ids = tok.encode(text, { allowSpecialTokens: true, plainSpans });
  return { text, ids, context: contextAfterLastSpecial(tok.specialTokenIds, (id) => tok.tokenString(id), text) };
}

/**
 * Renders messages through the chat template so that only the template's own markers become
 * control tokens. Everything the caller wrote — message contents, tool-call names and
 * arguments, tool results, tool names, descriptions and schemas — stays text: each
 * control-token string in it is swapped for a private-use stand-in before rendering, and put
 * back afterwards as a plain-text span. Templates that trim, JSON-encode or drop contents
 * (empty assistant contents beside tool calls) keep working, since nothing else changes.
 */
function renderKeepingCallerText(
  tok: TextTokenizer,
  messages: readonly ChatMessage[],
  tools: unknown[] | undefined,
  allowSpecialTokens: boolean,
): { text: string; plainSpans?: Array<[number, number]> } {
  const render = (m: readonly ChatMessage[], t: unknown[] | undefined) => tok.applyChatTemplate(m, { tools: t, addGenerationPrompt: true });
  if (allowSpecialTokens) return { text: render(messages, tools) };
  const found = new Set<string>();
  const seen = (value: unknown): void => {
    if (typeof value === 'string') {
      for (const s of tok.controlTokenStrings) if (value.includes(s)) found.add(s);
    } else if (Array.isArray(value)) value.forEach(seen);
    else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        seen(k);
        seen(v);
      }
    }
  };
  seen(messages);
  seen(tools ?? null);
  if (found.size === 0) return { text: render(messages, tools) };
  // One stand-in character per control string, from characters found nowhere in the input.
  const everything = JSON.stringify(messages) + JSON.stringify(tools ?? null) + (tok.chatTemplate ?? '');
  const standIn = new Map<string, string>();
  const original = new Map<string, string>();
  let code = 0xe000; // private use area
  for (const s of [...found].sort((a, b) => b.length - a.length)) {
    while (everything.includes(String.fromCharCode(code))) code++;
    if (code > 0xf8ff) throw new TokenizerError('the input uses every private-use character, so caller text cannot be told apart from template markers; pass allowSpecialTokens: true or remove special-token strings.');
    standIn.set(s, String.fromCharCode(code));
    original.set(String.fromCharCode(code), s);
    code++;
  }
  const pattern = new RegExp([...standIn.keys()].map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  const swap = (value: unknown): unknown => {
    if (typeof value === 'string') return value.replace(pattern, (s) => standIn.get(s)!);
    if (Array.isArray(value)) return value.map(swap);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [swap(k) as string, swap(v)]));
    return value;
  };
  const marked = render(swap(messages) as ChatMessage[], tools === undefined ? undefined : (swap(tools) as unknown[]));
  const plainSpans: Array<[number, number]> = [];
  let text = '';
  for (const ch of marked) {
    const s = original.get(ch);
    if (s === undefined) text += ch;
    else {
      plainSpans.push([text.length, text.length + s.length]);
      text += s;
    }
  }
  return { text, plainSpans };
}

function plainTail(text: string): string {
  if (text.length <= CONTEXT_CHARS) return text;
  const cut = text.length - CONTEXT_CHARS;
  const space = text.indexOf(' ', cut);
  return space >= 0 && space < text.length - 1 ? text.slice(space) : text.slice(cut);
}

function contextAfterLastSpecial(specialIds: ReadonlySet<number>, stringOf: (id: number) => string, text: string): EncodingContext {
  let best = -1;
  let special: string | null = null;
  for (const id of specialIds) {
    const s = stringOf(id);
    const at = text.lastIndexOf(s);
    if (at >= 0 && at + s.length > best + (special?.length ?? 0)) {
      best = at;
      special = s;
    }
  }
  if (special === null) return { text: plainTail(text), special: null };
  const after = text.slice(best + special.length);
  const tail = plainTail(after);
  // The marker only counts as context when the text right after it is kept whole.
  return { text: tail, special: tail === after ? special : null };
}
