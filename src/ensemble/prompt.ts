/**
 * Each model renders the prompt through its own chat template and tokenizer.
 * @module
 */
import { ContextOverflowError, InvalidArgumentError, TokenizerError } from '../errors.js';
import type { CausalLM } from '../runtime/causalLM.js';
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
export function renderPrompt(lm: CausalLM, input: EnsembleInput, options: RenderOptions & { reserve: number }): ModelPrompt {
  const prompt = renderPromptWith(lm.tokenizer, input, options, lm.name);
  if (prompt.ids.length === 0) throw new InvalidArgumentError('input', `input: the prompt renders to no tokens for model "${lm.name}".`);
  if (prompt.ids.length + options.reserve > lm.info.maxPositions) {
    throw new ContextOverflowError(
      `model "${lm.name}": the prompt is ${prompt.ids.length} tokens and up to ${options.reserve} more may be generated, beyond its context of ${lm.info.maxPositions}. Shorten the prompt or lower maxNewTokens.`,
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
  const text = tok.applyChatTemplate(messages, { tools: options.tools, addGenerationPrompt: true });
  const injected = !options.allowSpecialTokens && messages.some((m) => tok.containsSpecialString(m.content));
  const ids = tok.encode(text, { allowSpecialTokens: true, plainSpans: injected ? contentSpans(tok, messages, options.tools, text, name) : undefined });
  return { text, ids, context: contextAfterLastSpecial(tok.specialTokenIds, (id) => tok.tokenString(id), text) };
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

/**
 * Where the message contents lie in the rendered template text, so that special-token strings
 * in them stay text while the template's own markers become control tokens. Found by rendering
 * once more with each content wrapped in two marker characters that occur nowhere else.
 */
function contentSpans(tok: TextTokenizer, messages: readonly ChatMessage[], tools: unknown[] | undefined, text: string, name: string): Array<[number, number]> {
  const everything = text + JSON.stringify(messages) + JSON.stringify(tools ?? null) + (tok.chatTemplate ?? '');
  let code = 0xe000; // private use area
  while (everything.includes(String.fromCharCode(code)) || everything.includes(String.fromCharCode(code + 1))) code += 2;
  const open = String.fromCharCode(code);
  const close = String.fromCharCode(code + 1);
  const marked = tok.applyChatTemplate(
    // Outer whitespace stays outside the markers, so templates that trim contents still match.
    messages.map((m) => {
      const core = m.content.trim();
      const at = m.content.indexOf(core);
      return { ...m, content: m.content.slice(0, at) + open + core + close + m.content.slice(at + core.length) };
    }),
    { tools, addGenerationPrompt: true },
  );
  const spans: Array<[number, number]> = [];
  let plain = '';
  let start = -1;
  for (const ch of marked) {
    if (ch === open && start < 0) start = plain.length;
    else if (ch === close && start >= 0) {
      spans.push([start, plain.length]);
      start = -1;
    } else if (ch !== open && ch !== close) plain += ch;
  }
  if (plain !== text || start >= 0) {
    throw new TokenizerError(
      `model "${name}": a message contains a special-token string (e.g. <|im_end|>), and its chat template transforms message contents, so they cannot be kept as plain text. Remove the special-token strings from the messages, or pass allowSpecialTokens: true to let them act as control tokens.`,
    );
  }
  return spans;
}
