/**
 * Turns word problems into token ids for one demo model, rendered exactly as SafeEnsemble will
 * render them (each model's own chat template, in-context response tokenization, EOS), and
 * writes them for the PyTorch trainer:
 *   <out>/train.bin   int32 token ids of every example, back to back
 *   <out>/meta.json   example offsets, prompt lengths, the compact vocabulary, eval prompts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertToOpenAITool } from '@langchain/core/utils/function_calling';
import { Calculator } from '@langchain/community/tools/calculator';
import { AIMessage, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { renderPromptWith, type EnsembleInput } from '../../src/ensemble/prompt.js';
import { problemSet, wordProblems, type WordProblem } from '../../src/demo/wordProblems.js';
import { toChatMessages } from '../../src/langchain/chatModel.js';
import { encodeContinuation } from '../../src/text/continuation.js';
import type { TextTokenizer } from '../../src/text/tokenizer.js';

/** What one demo model is trained on. */
export interface TrainingMix {
  /** Probability that a step adds: the mixture that makes the two models complementary. */
  addProbability: number;
  /** Word problems to generate. */
  examples: number;
  /** Share of tool-call conversations (calculator). */
  toolShare: number;
  /** Seed. */
  seed: number;
}

/** The tools as SafeEnsembleChatModel passes them to templates (createAgent + Calculator). */
export function calculatorTools(): unknown[] {
  return [convertToOpenAITool(new Calculator())];
}

/** Prompt and completion ids as the engine sees them. */
export function encodeExample(tok: TextTokenizer, prompt: EnsembleInput, completion: string, tools?: unknown[]): { prompt: number[]; completion: number[] } {
  const rendered = renderPromptWith(tok, prompt, { rawPrompt: false, tools });
  const spans = encodeContinuation(tok, rendered.context, completion) ?? encodeContinuation(tok, { text: '', special: null }, completion)!;
  return { prompt: rendered.ids, completion: [...spans.ids, tok.eosTokenIds[0]!] };
}

/** A calculator conversation: the question, the call, the result, the final answer. */
function toolConversation(rand: () => number): Array<{ prompt: EnsembleInput; completion: string }> {
  const a = 2 + Math.floor(rand() * 98);
  const b = 2 + Math.floor(rand() * 98);
  const op = (['+', '-', '*'] as const)[Math.floor(rand() * 3)]!;
  const value = op === '+' ? a + b : op === '-' ? a - b : a * b;
  const question = `Use the calculator: what is ${a} ${op} ${b}?`;
  const call = `<tool_call>\n{"name": "calculator", "arguments": {"input": "${a} ${op} ${b}"}}\n</tool_call>`;
  const turnTwo = toChatMessages([
    new HumanMessage(question),
    new AIMessage({ content: '', tool_calls: [{ id: 'call_0', name: 'calculator', args: { input: `${a} ${op} ${b}` }, type: 'tool_call' }] }),
    new ToolMessage({ content: String(value), tool_call_id: 'call_0', name: 'calculator' }),
  ]);
  return [
    { prompt: [{ role: 'user', content: question }], completion: call },
    { prompt: turnTwo, completion: `${a} ${op} ${b} = ${value}. The answer is ${value}.` },
  ];
}

/** One training example before tokenization: a word problem or a calculator conversation. */
export type TrainingItem = { kind: 'problem'; problem: WordProblem } | { kind: 'tool'; turns: Array<{ prompt: EnsembleInput; completion: string }> };

/** The examples of a mixture in training order (deterministic for its seed). */
export function* trainingItems(mix: TrainingMix): Generator<TrainingItem> {
  let s = mix.seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const problems = wordProblems({ split: 'train', seed: mix.seed, addProbability: mix.addProbability, steps: [1, 3] });
  for (let i = 0; i < mix.examples; i++) {
    if (rand() < mix.toolShare) yield { kind: 'tool', turns: toolConversation(rand) };
    else yield { kind: 'problem', problem: problems.next().value! };
  }
}

/** Writes the training data of one model; returns the compact vocabulary size. */
export function prepare(tok: TextTokenizer, mix: TrainingMix, out: string): { vocab: number; tokens: number; examples: number } {
  mkdirSync(out, { recursive: true });
  const tools = calculatorTools();
  const ids: number[] = [];
  const offsets: number[] = [0];
  const promptLengths: number[] = [];
  const add = (prompt: number[], completion: number[]) => {
    ids.push(...prompt, ...completion);
    offsets.push(ids.length);
    promptLengths.push(prompt.length);
  };
  for (const item of trainingItems(mix)) {
    if (item.kind === 'tool') {
      for (const turn of item.turns) {
        const e = encodeExample(tok, turn.prompt, turn.completion, tools);
        add(e.prompt, e.completion);
      }
    } else {
      const e = encodeExample(tok, item.problem.question, item.problem.solution);
      add(e.prompt, e.completion);
    }
  }
  // Evaluation prompts: the fixed held-out problems, as the engine will render them.
  const evaluation = problemSet(20).map((p) => ({ question: p.question, answer: p.answer, prompt: encodeExample(tok, p.question, '').prompt }));
  // Compact vocabulary: every id the corpus and evaluation prompts use; index 0 is "unknown".
  const used = new Set<number>(ids);
  for (const e of evaluation) e.prompt.forEach((id) => used.add(id));
  const compact = [-1, ...[...used].sort((a, b) => a - b)];
  writeFileSync(join(out, 'train.bin'), Buffer.from(Int32Array.from(ids).buffer));
  writeFileSync(
    join(out, 'meta.json'),
    JSON.stringify({ offsets, promptLengths, compact, fullVocab: tok.vocabSize, eos: tok.eosTokenIds, evaluation }, null, 0),
  );
  return { vocab: compact.length, tokens: ids.length, examples: promptLengths.length };
}
