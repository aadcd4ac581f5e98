/**
 * Tool calls that always parse: with tools offered, the reply's calls are constrained to the
 * bound tools' names and argument schemas, written in the drafter's chat-template syntax
 * (Qwen/Hermes `<tool_call>`, Mistral `[TOOL_CALLS]`, Llama 3 JSON). A member whose template has
 * no tool syntax is constrained on the same shared text. `toolChoice` says whether a call is
 * optional (`auto`: text, or calls once the call marker starts), forced (`required`, or one
 * named tool), or off (`none`).
 * @module
 */
import { InvalidArgumentError } from '../errors.js';
import { compileToolCallGrammar, type GrammarTool, type ToolCallSyntax } from '../text/json/schema.js';
import { GrammarConstraint } from './jsonConstraint.js';

/** Which calls a reply may or must make (OpenAI's and LangChain's `tool_choice`). */
export type ToolChoice = 'auto' | 'none' | 'required' | 'any' | string | { type: 'function'; function: { name: string } };

/** Most calls one reply may make where the template writes several. */
export const MAX_PARALLEL_CALLS = 4;

const HERMES: ToolCallSyntax = { open: '<tool_call>\n', marker: '<tool_call>', close: '\n</tool_call>', separator: '\n', argumentsKey: 'arguments', list: false, maxCalls: MAX_PARALLEL_CALLS };

/** The tool-call syntax a chat template writes (Qwen/Hermes tags where it shows none: the reply parser reads them). */
export function toolCallSyntax(template: string | null): ToolCallSyntax {
  const t = template ?? '';
  if (t.includes('[TOOL_CALLS]')) return { open: '[TOOL_CALLS]', marker: '[TOOL_CALLS]', close: '', separator: '', argumentsKey: 'arguments', list: true, maxCalls: MAX_PARALLEL_CALLS };
  if (t.includes('<tool_call>')) return HERMES;
  // Llama 3.x: the reply is one JSON call with "parameters".
  if (t.includes('"parameters"') && (t.includes('<|eot_id|>') || t.includes('python_tag'))) return { open: '', marker: '', close: '', separator: '', argumentsKey: 'parameters', list: false, maxCalls: 1 };
  return HERMES;
}

/** The OpenAI-format tools as names and argument schemas. */
function grammarTools(tools: readonly unknown[]): GrammarTool[] {
  return tools.map((tool, i) => {
    const t = tool as { function?: { name?: unknown; parameters?: unknown }; name?: unknown; parameters?: unknown };
    const fn = t.function ?? t;
    if (typeof fn.name !== 'string' || fn.name.length === 0) throw new InvalidArgumentError('tools', `tools[${i}]: a tool needs a "name" (OpenAI function format: { type: 'function', function: { name, parameters } }).`);
    return { name: fn.name, parameters: fn.parameters ?? { type: 'object' } };
  });
}

/** The tool name a choice forces, 'auto', 'required' or 'none'. */
export function normalizeToolChoice(choice: unknown): { mode: 'auto' | 'required' | 'none'; name?: string } {
  if (choice === undefined || choice === null || choice === 'auto') return { mode: 'auto' };
  if (choice === 'none') return { mode: 'none' };
  if (choice === 'required' || choice === 'any') return { mode: 'required' };
  if (typeof choice === 'string' && choice.length > 0) return { mode: 'required', name: choice };
  const named = (choice as { function?: { name?: unknown }; name?: unknown } | null)?.function?.name ?? (choice as { name?: unknown }).name;
  if (typeof choice === 'object' && typeof named === 'string' && named.length > 0) return { mode: 'required', name: named };
  throw new InvalidArgumentError('toolChoice', `toolChoice: must be 'auto', 'none', 'required' ('any'), a tool's name or { type: 'function', function: { name } }.`);
}

const compiled = new Map<string, GrammarConstraint>();
const KEPT = 32;

/**
 * The constraint of a reply offered `tools` under `choice`, written as `template` writes calls;
 * null for `none`. Compiled grammars are kept (an agent offers the same tools every turn, so
 * their token masks are reused).
 */
export function toolCallConstraint(tools: readonly unknown[], choice: unknown, template: string | null): GrammarConstraint | null {
  const { mode, name } = normalizeToolChoice(choice);
  if (mode === 'none') return null;
  let offered = grammarTools(tools);
  if (name !== undefined) {
    offered = offered.filter((t) => t.name === name);
    if (offered.length === 0) throw new InvalidArgumentError('toolChoice', `toolChoice: no bound tool is named ${JSON.stringify(name.slice(0, 60))}; bound tools: ${grammarTools(tools).map((t) => t.name).join(', ')}.`);
  }
  const syntax = toolCallSyntax(template);
  // A Llama-3-style reply is either prose or one JSON call; without a marker, auto leaves it free.
  if (mode === 'auto' && syntax.open === '') return null;
  const key = JSON.stringify([offered, syntax, mode]);
  let constraint = compiled.get(key);
  if (!constraint) {
    constraint = new GrammarConstraint(compileToolCallGrammar(offered, syntax, mode));
    if (compiled.size >= KEPT) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, constraint);
  }
  return constraint;
}
