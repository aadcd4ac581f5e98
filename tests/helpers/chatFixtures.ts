import { AIMessage, HumanMessage, ToolMessage, type BaseMessage } from '@langchain/core/messages';
import { convertToOpenAITool } from '@langchain/core/utils/function_calling';
import { Calculator } from '@langchain/community/tools/calculator';
import { toChatMessages } from '../../src/research';
import { MISTRAL_TOOLS_TEMPLATE } from '../../tools/fixtures/chatTemplates';
import type { Script } from '../../tools/fixtures/scriptedDecoder';
import { scriptedModel } from './scripted';

export const QA_PROMPT = 'Q: What is 2 + 3?\nA:';
export const QA_ANSWER = ' 2 + 3 = 5. The answer is 5.';
export const COLOR_PROMPT = 'Q: Name a color.\nA:';
export const COLOR_ANSWER = ' Blue is a color, and so is green.';
export const HELLO = [new HumanMessage('Say hello.')];
export const HELLO_ANSWER = 'Hello! How can I help you today?';
export const AGENT_QUESTION = 'What is 12 * 7?';
export const TOOL_CALL_TEXT = '<tool_call>\n{"name": "calculator", "arguments": {"input": "12 * 7"}}\n</tool_call>';
export const AGENT_ANSWER = '12 * 7 = 84.';
export const PERSON_SCHEMA = {
  title: 'Person',
  description: 'A person mentioned in the text.',
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'number' } },
  required: ['name', 'age'],
};
export const EXTRACT = [new HumanMessage('Extract the person: Mia is 7 years old.')];
export const EXTRACT_CALL = '<tool_call>\n{"name": "Person", "arguments": {"name": "Mia", "age": 7}}\n</tool_call>';
export const BROKEN = [new HumanMessage('Call a tool badly.')];
export const BROKEN_CALL = '<tool_call>\n{"name": "calculator", "arguments": {"input": "1 +\n</tool_call>';
export const PROSE_THEN_BROKEN = [new HumanMessage('Explain, then call a tool badly.')];
export const PROSE_THEN_BROKEN_CALL = `Let me work it out.\n${BROKEN_CALL}`;

/** The tools exactly as createAgent / withStructuredOutput hand them to bindTools. */
export function calculatorTools(): Record<string, unknown>[] {
  return [convertToOpenAITool(new Calculator()) as unknown as Record<string, unknown>];
}
export function personTools(): Record<string, unknown>[] {
  return [
    convertToOpenAITool({ type: 'function', function: { name: 'Person', description: PERSON_SCHEMA.description, parameters: PERSON_SCHEMA } } as never) as unknown as Record<string, unknown>,
  ];
}

/** The second agent turn: the question, the model's tool call, the tool's answer. */
export function agentTurnTwo(): BaseMessage[] {
  return [
    new HumanMessage(AGENT_QUESTION),
    new AIMessage({ content: '', tool_calls: [{ id: 'call_1', name: 'calculator', args: { input: '12 * 7' }, type: 'tool_call' }] }),
    new ToolMessage({ content: '84', tool_call_id: 'call_1', name: 'calculator' }),
  ];
}

function scripts(): Script[] {
  return [
    { prompt: QA_PROMPT, completion: QA_ANSWER, rawPrompt: true },
    { prompt: COLOR_PROMPT, completion: COLOR_ANSWER, rawPrompt: true },
    { prompt: toChatMessages(HELLO), completion: HELLO_ANSWER },
    { prompt: toChatMessages([new HumanMessage(AGENT_QUESTION)]), completion: TOOL_CALL_TEXT, tools: calculatorTools() },
    { prompt: toChatMessages(agentTurnTwo()), completion: AGENT_ANSWER, tools: calculatorTools() },
    { prompt: toChatMessages(EXTRACT), completion: EXTRACT_CALL, tools: personTools() },
    { prompt: toChatMessages(BROKEN), completion: BROKEN_CALL, tools: calculatorTools() },
    { prompt: toChatMessages(PROSE_THEN_BROKEN), completion: PROSE_THEN_BROKEN_CALL, tools: calculatorTools() },
  ];
}

/** Two scripted models (Qwen3 tokenizer with its own template, Mistral tokenizer with ours). */
export async function chatPair(confidence = 0.9): Promise<[string, string]> {
  const s = scripts();
  return [
    await scriptedModel({ tokenizer: 'qwen3', scripts: s, confidence, context: 'prefix' }),
    await scriptedModel({ tokenizer: 'llama2', scripts: s, confidence, context: 'prefix', chatTemplate: MISTRAL_TOOLS_TEMPLATE }),
  ];
}
