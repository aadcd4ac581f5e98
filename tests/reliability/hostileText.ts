/**
 * Hostile-text properties, shared by the Jest suite (a few hundred cases) and the fuzz script
 * `bench/fuzz.ts` (tens of thousands): random Unicode through the four real tokenizers, the
 * incremental response tokenization and the stability gate.
 */
import fc from 'fast-check';
import { join } from 'node:path';
import { encodeContinuation, fromUtf8, isCharBoundary, ResponseTokenization, stableAlignment, TextTokenizer, utf8, validUtf8Length, type ChatMessage } from '../../src/research';
import { packageRoot } from '../../src/demo/models';
import { renderPromptWith } from '../../src/ensemble/prompt';
import { tokenizerDir, type FixtureTokenizer } from '../../tools/fixtures/tinyDecoder';

export const TOKENIZERS: FixtureTokenizer[] = ['qwen3', 'llama2', 'llama3', 'gemma3'];

/** The four real tokenizers, each with a chat template (Mistral's comes with the bundled model). */
export async function loadTokenizers(): Promise<Record<FixtureTokenizer, TextTokenizer>> {
  const root = packageRoot();
  const out = {} as Record<FixtureTokenizer, TextTokenizer>;
  for (const name of TOKENIZERS) {
    out[name] = await TextTokenizer.fromFolder(name === 'llama2' ? join(root, 'models', 'mistral-subtractor') : tokenizerDir(name));
  }
  return out;
}

/** Strings that look like control or byte tokens of any of the four vocabularies. */
export function specialLookalikes(toks: Record<FixtureTokenizer, TextTokenizer>): string[] {
  const out = new Set<string>(['<0x0A>', '<0xE2>', '<0xFF>', '<unk>', '<s>', '</s>', '▁', '<|endoftext|>', '<start_of_turn>', '[INST]', '<|eot_id|>']);
  for (const tok of Object.values(toks)) for (const id of [...tok.specialTokenIds].slice(0, 12)) out.add(tok.tokenString(id));
  return [...out];
}

/** Random hostile text: mixes of every kind the issue names. */
export function hostileText(lookalikes: string[]): fc.Arbitrary<string> {
  const piece = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 6 }), // any code point, astral ones as surrogate pairs
    fc.string({ unit: 'grapheme', maxLength: 4 }),
    fc.constantFrom('e\u0301', 'a\u0308\u0323', 'Z\u0351\u036b\u0343', '\u1100\u1161\u11a8', '\u0301', '\u200d'),
    fc.constantFrom('👩‍👩‍👧', '👍🏽', '🇫🇷', '🏳️‍🌈', '🧑🏿‍🚀', '❤️'),
    fc.constantFrom('日本語', '中文混合', '한국어', 'テキスト', '𓀀𓁐', '𝔘𝔫𝔦'),
    fc.constantFrom('مرحبا', 'שלום', '\u202e', '\u200f', '\u061c'),
    fc.constantFrom('\u0000', '\u0007', '\u001b[31m', '\r\n', '\t', '\u000b', '\u0085', '\u2028', '\ufeff', '\ufffd'),
    fc.constantFrom(...lookalikes),
    fc.constantFrom(' ', '  ', '\n\n', ' 37 + 25 = 62.', 'Mia', ' Xiomara', 'photosynthesis', '1,000', '0x1F'),
  );
  return fc.array(piece, { minLength: 1, maxLength: 12 }).map((parts) => parts.join(''));
}

/** Byte offsets of a text tile it exactly. */
export function offsetsReassemble(tok: TextTokenizer, text: string): void {
  const { ids, starts, ends, bytes } = tok.offsets(text);
  const expected = utf8(text);
  check(bytesEqualArr(bytes, expected), 'offsets(): bytes differ from the input');
  if (expected.length === 0) return;
  check(ids.length > 0 && starts[0] === 0 && ends[ids.length - 1] === expected.length, 'offsets(): spans do not cover the text');
  const pieces: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    check(i === 0 || starts[i] === ends[i - 1], `offsets(): gap at token ${i}`);
    check(ends[i]! >= starts[i]!, `offsets(): token ${i} ends before it starts`);
    for (let b = starts[i]!; b < ends[i]!; b++) pieces.push(bytes[b]!);
  }
  check(Buffer.from(pieces).toString('utf8') === text || bytesEqualArr(Uint8Array.from(pieces), expected), 'offsets(): pieces do not reassemble the input');
  // Where the tokenization is byte-exact (no normalization rewrites the text; literal U+2581
  // and a dummy-prefix space are accounted for exactly), every token has a width of its own,
  // but a leading token that is only the dummy-prefix space.
  if (text.normalize('NFKC') === text && !/[\uD800-\uDFFF]/.test(text)) {
    for (let i = 0; i < ids.length; i++) {
      const dummy = i === 0 && tok.tokenBytes(ids[0]!).length === 1 && tok.tokenBytes(ids[0]!)[0] === 0x20 && tok.dummyPrefixBytes(text) === 1;
      check(ends[i]! > starts[i]! || dummy, `offsets(): token ${i} (${JSON.stringify(tok.tokenString(ids[i]!))}) has zero width in byte-exact text`);
    }
  }
}

/**
 * Streams `text` as a drafter would (chunks cut at arbitrary bytes, also inside characters, with
 * a throw-away draft in between) through a verifier's incremental tokenization, and checks that
 * it equals re-encoding the valid prefix and that every stable position is a character boundary
 * where the verifier has a token boundary.
 */
export function streamAndGate(drafter: TextTokenizer, verifier: TextTokenizer, text: string, cuts: number[]): void {
  const bytes = utf8(text);
  if (bytes.length === 0) return;
  const prompt = renderPromptWith(verifier, 'Q: a question\nA:', { rawPrompt: true });
  const tokens = new ResponseTokenization(verifier, prompt.context);
  const drafterStarts = [...drafter.offsets(text).starts];
  let committed = 0;
  const ends = [...new Set(cuts.map((c) => 1 + (c % bytes.length)))].sort((a, b) => a - b);
  if (ends[ends.length - 1] !== bytes.length) ends.push(bytes.length);
  for (const end of ends) {
    const candidate = bytes.subarray(0, end);
    tokens.update(new Uint8Array([...candidate, 0x20, 0x7a]), committed);
    tokens.update(candidate, committed);
    committed = Math.max(0, end - 3);
    const valid = validUtf8Length(candidate);
    const str = fromUtf8(candidate.subarray(0, valid));
    const full = encodeContinuation(verifier, prompt.context, str) ?? encodeContinuation(verifier, { text: '', special: null }, str)!;
    check(JSON.stringify(tokens.ids) === JSON.stringify(full.ids), 'incremental tokenization differs from re-encoding');
    check(tokens.coveredBytes === valid, 'incremental tokenization covers more than the valid UTF-8 prefix');
    for (const offset of [...drafterStarts.filter((o) => o <= end), end]) {
      for (const eos of [false, true]) {
        const at = stableAlignment(candidate, offset, [tokens], eos);
        if (!at) continue;
        check(isCharBoundary(candidate, offset) && offset <= valid, `stable position ${offset} is inside a character`);
        const k = at[0]!;
        check(k === 0 ? offset === 0 : tokens.ends[k - 1] === offset, `stable position ${offset} is not a verifier token boundary`);
      }
    }
  }
}

/** An agent's conversation with `t` in every field the caller controls, and tools that carry it too. */
export function agentConversation(t: string): { messages: ChatMessage[]; tools: unknown[] } {
  return {
    messages: [
      { role: 'system', content: `Be brief.${t}` },
      { role: 'user', content: `What is 2 + 2?${t}` },
      { role: 'assistant', content: '', tool_calls: [{ id: `call_1${t}`, type: 'function', function: { name: `calculator${t}`, arguments: { input: `2 + 2${t}`, [`note${t}`]: t } } }] },
      { role: 'tool', content: `4${t}`, tool_call_id: `call_1${t}`, name: `calculator${t}` },
    ],
    tools: [{ type: 'function', function: { name: `calculator${t}`, description: `Adds numbers.${t}`, parameters: { type: 'object', properties: { input: { type: 'string', description: `an expression${t}` } }, required: ['input'] } } }],
  };
}

/** Whether the tokenizer's chat template renders tool calls and tool results (Gemma 3's does not). */
export function supportsTools(tok: TextTokenizer): boolean {
  try {
    const { messages, tools } = agentConversation('x');
    renderPromptWith(tok, messages, { rawPrompt: false, tools });
    return true;
  } catch {
    return false;
  }
}

/** Control tokens (special tokens and the template's own added markers) among `ids`. */
export function controlTokens(tok: TextTokenizer, ids: readonly number[]): string[] {
  const control = new Set(tok.controlTokenStrings);
  return ids.map((id) => tok.tokenString(id)).filter((s) => control.has(s));
}

/**
 * Special-token strings anywhere the caller writes stay text: a rendered prompt has exactly the
 * control tokens of the same conversation with harmless text — in messages, and in a whole
 * agent conversation (tool-call names and arguments, tool results, tool names, descriptions
 * and schemas) — unless the caller allows them.
 */
export function specialStringsStayText(tok: TextTokenizer, text: string): void {
  const render = (content: string, allow = false) => renderPromptWith(tok, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content }], { rawPrompt: false, allowSpecialTokens: allow }).ids;
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const benign = controlTokens(tok, render('x'));
  const hostile = controlTokens(tok, render(text));
  check(same(hostile, benign), `user text produced control tokens: ${hostile.join(' ')} instead of ${benign.join(' ')}`);
  const agent = (t: string) => {
    const { messages, tools } = agentConversation(t);
    return controlTokens(tok, renderPromptWith(tok, messages, { rawPrompt: false, tools }).ids);
  };
  if (supportsTools(tok)) {
    const agentBenign = agent('x');
    const agentHostile = agent(text);
    check(same(agentHostile, agentBenign), `agent fields produced control tokens: ${agentHostile.join(' ')} instead of ${agentBenign.join(' ')}`);
  }
  check(controlTokens(tok, tok.encode(text)).length === 0, 'plain encode() produced a control token');
  check(controlTokens(tok, renderPromptWith(tok, text, { rawPrompt: true }).ids).length <= controlTokens(tok, tok.encode('', { addSpecialTokens: true })).length, 'a raw prompt produced a control token');
}

function bytesEqualArr(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}
