/**
 * Rendering a tokenizer's chat template with the variables transformers.js's
 * `apply_chat_template` gives it.
 * @module
 */
import { Template } from '@huggingface/jinja';
import { TokenizerError } from '../errors.js';
import { NON_TEMPLATE_OPTIONS } from './tokenizerFiles.js';
import type { ChatMessage } from './tokenizerTypes.js';

/** The compiled template (a template that does not parse fails here, as a TokenizerError). */
export function compileTemplate(source: string): Template {
  try {
    return new Template(source);
  } catch (cause) {
    throw new TokenizerError(`the chat template failed to render: ${(cause as Error).message}`, { cause });
  }
}

/** Renders `messages`; `templateTokens` are tokenizer_config.json's named tokens (bos_token, eos_token...). */
export function renderChatTemplate(
  template: Template,
  messages: readonly ChatMessage[],
  options: { tools?: unknown[]; addGenerationPrompt?: boolean; templateKwargs?: Record<string, unknown> },
  templateTokens: Record<string, string>,
): string {
  try {
    // The variables transformers.js's apply_chat_template gives a template, in its order:
    // keyword arguments may override tools / add_generation_prompt / documents.
    const settings: Record<string, unknown> = {
      tools: options.tools && options.tools.length > 0 ? options.tools : null,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      documents: null,
      ...options.templateKwargs,
    };
    const { tools, add_generation_prompt, documents, ...rest } = settings;
    const kwargs = Object.fromEntries(Object.entries(rest).filter(([k]) => !NON_TEMPLATE_OPTIONS.has(k)));
    return template.render({ messages: messages as unknown[], add_generation_prompt, tools, documents, ...templateTokens, ...kwargs } as Record<string, unknown>);
  } catch (cause) {
    throw new TokenizerError(`the chat template failed to render: ${(cause as Error).message}`, { cause });
  }
}
