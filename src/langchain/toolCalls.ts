/**
 * Tool calls written as text by local models, in the common open-model formats:
 * Qwen/Hermes `<tool_call>{"name", "arguments"}</tool_call>`, Mistral
 * `[TOOL_CALLS] [{"name", "arguments"}]`, and Llama 3 JSON `{"name", "parameters"}`
 * (optionally after `<|python_tag|>`).
 * @module
 */
import { randomUUID } from 'node:crypto';

/** A parsed tool call. */
export interface ParsedToolCall {
  id: string;
  name: string;
  args: Record<string, unknown>;
  type: 'tool_call';
}

/** A tool call that could not be parsed (kept so the agent can report it). */
export interface ParsedInvalidToolCall {
  id: string;
  name?: string;
  args?: string;
  error: string;
  type: 'invalid_tool_call';
}

/** Text split into prose and tool calls. */
export interface ParsedOutput {
  /** Text outside tool-call markup, as written. */
  content: string;
  toolCalls: ParsedToolCall[];
  invalidToolCalls: ParsedInvalidToolCall[];
}

/** Markers that start a tool call; streaming holds text back from the first one on. */
export const TOOL_CALL_MARKERS = ['<tool_call>', '[TOOL_CALLS]', '<|python_tag|>'];

function newId(): string {
  return `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
}

function toCall(value: unknown, raw: string): ParsedToolCall | ParsedInvalidToolCall {
  const v = value as { name?: unknown; arguments?: unknown; parameters?: unknown; id?: unknown };
  if (!v || typeof v !== 'object' || typeof v.name !== 'string' || v.name.length === 0) {
    return { id: newId(), args: raw, error: 'tool call has no "name"', type: 'invalid_tool_call' };
  }
  let args: unknown = v.arguments ?? v.parameters ?? {};
  if (typeof args === 'string') {
    const text = args;
    try {
      args = JSON.parse(text);
    } catch {
      return { id: newId(), name: v.name, args: text, error: 'tool call "arguments" is a string that is not JSON', type: 'invalid_tool_call' };
    }
  }
  if (!args || typeof args !== 'object' || Array.isArray(args)) {
    return { id: newId(), name: v.name, args: raw, error: 'tool call "arguments" must be a JSON object', type: 'invalid_tool_call' };
  }
  return { id: newId(), name: v.name, args: args as Record<string, unknown>, type: 'tool_call' };
}

function parseJson(raw: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch (e) {
    return { ok: false, error: `invalid JSON in tool call: ${(e as Error).message}` };
  }
}

function collect(out: ParsedOutput, raw: string): void {
  const parsed = parseJson(raw.trim());
  if (!parsed.ok) {
    const name = /"name"\s*:\s*"([^"]+)"/.exec(raw)?.[1];
    out.invalidToolCalls.push({ id: newId(), ...(name ? { name } : {}), args: raw.trim(), error: parsed.error, type: 'invalid_tool_call' });
    return;
  }
  for (const item of Array.isArray(parsed.value) ? parsed.value : [parsed.value]) {
    const call = toCall(item, raw.trim());
    if (call.type === 'tool_call') out.toolCalls.push(call);
    else out.invalidToolCalls.push(call);
  }
}

/** The index just past the JSON object that starts (after blanks) at `from`, or -1. */
function jsonEnd(text: string, from: number): number {
  let i = from;
  while (i < text.length && /\s/.test(text[i]!)) i++;
  if (text[i] !== '{') return -1;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Splits generated text into content and tool calls. Every call gets a fresh unique id. */
export function parseToolCalls(text: string): ParsedOutput {
  const out: ParsedOutput = { content: text, toolCalls: [], invalidToolCalls: [] };
  // Qwen / Hermes: <tool_call> ... </tool_call> (a missing close tag at the end still counts).
  if (text.includes('<tool_call>')) {
    const rest: string[] = [];
    let at = 0;
    for (;;) {
      const open = text.indexOf('<tool_call>', at);
      if (open < 0) {
        rest.push(text.slice(at));
        break;
      }
      rest.push(text.slice(at, open));
      const start = open + '<tool_call>'.length;
      // The call's JSON ends where its braces balance (its strings may hold "</tool_call>");
      // where they never do, at the close tag.
      const end = jsonEnd(text, start);
      const close = end >= 0 ? end : text.indexOf('</tool_call>', open);
      collect(out, text.slice(start, close < 0 ? text.length : close));
      if (close < 0) break;
      at = close;
      const after = /^\s*<\/tool_call>/.exec(text.slice(at));
      if (after) at += after[0].length;
    }
    out.content = rest.join('');
    return out;
  }
  // Mistral: [TOOL_CALLS] [ ... ]
  const mistral = text.indexOf('[TOOL_CALLS]');
  if (mistral >= 0) {
    collect(out, text.slice(mistral + '[TOOL_CALLS]'.length));
    out.content = text.slice(0, mistral);
    return out;
  }
  // Llama 3: the whole message is one JSON call, optionally after <|python_tag|>.
  const body = text.replace('<|python_tag|>', '').trim();
  if (body.startsWith('{') && body.endsWith('}') && /"name"\s*:/.test(body) && /"(parameters|arguments)"\s*:/.test(body)) {
    collect(out, body);
    if (out.toolCalls.length + out.invalidToolCalls.length > 0) out.content = '';
  }
  return out;
}

/** Index where tool-call markup may begin in streamed text, or -1 (text before it is safe to stream). */
export function toolCallStart(text: string): number {
  let first = -1;
  for (const marker of TOOL_CALL_MARKERS) {
    const at = text.indexOf(marker);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  // A reply that opens with "{" may be a Llama-style JSON call.
  const lead = text.search(/\S/);
  if (lead >= 0 && text[lead] === '{' && (first < 0 || lead < first)) first = lead;
  // A marker cut off at the end of the text so far.
  for (const marker of TOOL_CALL_MARKERS) {
    for (let len = Math.min(marker.length - 1, text.length); len > 0; len--) {
      if (text.endsWith(marker.slice(0, len))) {
        const at = text.length - len;
        if (first < 0 || at < first) first = at;
        break;
      }
    }
  }
  return first;
}
