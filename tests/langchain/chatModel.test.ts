import { Calculator } from '@langchain/community/tools/calculator';
import { load } from '@langchain/core/load';
import { AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import { createAgent } from 'langchain';
import * as lib from '../../src/index';
import { SafeEnsembleChatModel, type EnsembleStats } from '../../src/index';
import { parseToolCalls, toChatMessages, toolCallStart } from '../../src/research';
import { AGENT_ANSWER, AGENT_QUESTION, agentTurnTwo, BROKEN, chatPair, EXTRACT, HELLO, HELLO_ANSWER, PERSON_SCHEMA } from '../helpers/chatFixtures';

describe('SafeEnsembleChatModel', () => {
  let models: [string, string];
  let chat: SafeEnsembleChatModel;
  beforeAll(async () => {
    models = await chatPair();
    chat = new SafeEnsembleChatModel({ models, maxNewTokens: 64 });
  });
  afterAll(() => chat.dispose());

  it('answers through each model’s chat template, with usage and ensemble statistics', async () => {
    const reply = await chat.invoke(HELLO);
    expect(reply).toBeInstanceOf(AIMessageChunk);
    expect(reply.content).toBe(HELLO_ANSWER);
    expect(reply.usage_metadata).toMatchObject({ output_tokens: expect.any(Number), input_tokens: expect.any(Number) });
    expect(reply.usage_metadata!.total_tokens).toBe(reply.usage_metadata!.input_tokens + reply.usage_metadata!.output_tokens);
    const stats = reply.response_metadata.ensemble as EnsembleStats;
    expect(stats.strategy).toBe('safe');
    expect(stats.ensembleRatePct).toBeGreaterThanOrEqual(0);
    expect(reply.response_metadata.finish_reason).toBe('eos');
  });

  it('streams the same text it returns', async () => {
    let streamed = '';
    let chunks = 0;
    for await (const chunk of await chat.stream(HELLO)) {
      streamed += chunk.content;
      chunks++;
    }
    expect(chunks).toBeGreaterThan(1);
    expect(streamed).toBe(HELLO_ANSWER);
  });

  it('returns exactly one tool call with a fresh id, and streams it as tool_call_chunks', async () => {
    const withTools = chat.bindTools([new Calculator()]);
    const first = await withTools.invoke([new HumanMessage(AGENT_QUESTION)]);
    expect(first.content).toBe('');
    expect(first.tool_calls).toHaveLength(1);
    expect(first.tool_calls![0]).toMatchObject({ name: 'calculator', args: { input: '12 * 7' }, type: 'tool_call' });
    const second = await withTools.invoke([new HumanMessage(AGENT_QUESTION)]);
    expect(second.tool_calls![0]!.id).not.toBe(first.tool_calls![0]!.id);
    expect(first.response_metadata.finish_reason).toBe('tool_calls');
    const chunks: AIMessageChunk[] = [];
    for await (const chunk of await withTools.stream([new HumanMessage(AGENT_QUESTION)])) chunks.push(chunk);
    const callChunks = chunks.flatMap((c) => c.tool_call_chunks ?? []);
    expect(callChunks).toHaveLength(1);
    expect(JSON.parse(callChunks[0]!.args!)).toEqual({ input: '12 * 7' });
    expect(chunks.map((c) => c.content).join('')).toBe(''); // the markup is never streamed as text
  });

  it('puts a malformed tool call into invalid_tool_calls (with tool_choice none: calls are not constrained)', async () => {
    const reply = await chat.bindTools([new Calculator()], { tool_choice: 'none' }).invoke(BROKEN);
    expect(reply.tool_calls).toEqual([]);
    expect(reply.invalid_tool_calls).toHaveLength(1);
    expect(reply.invalid_tool_calls![0]).toMatchObject({ type: 'invalid_tool_call' });
  });

  it('continues a tool-message history to the final answer', async () => {
    const reply = await chat.bindTools([new Calculator()]).invoke(agentTurnTwo());
    expect(reply.content).toBe(AGENT_ANSWER);
    expect(reply.tool_calls).toEqual([]);
  });

  it('is an agent’s model: createAgent with a real Calculator runs the whole loop', async () => {
    const agent = createAgent({ model: chat, tools: [new Calculator()] });
    const result = await agent.invoke({ messages: [{ role: 'user', content: AGENT_QUESTION }] });
    const types = result.messages.map((m) => m.getType());
    expect(types).toEqual(['human', 'ai', 'tool', 'ai']);
    expect(result.messages[2]!.content).toBe('84');
    expect(result.messages[3]!.content).toBe(AGENT_ANSWER);
  });

  it('streams an agent run in "messages" mode', async () => {
    const agent = createAgent({ model: chat, tools: [new Calculator()] });
    const seen: Array<{ type: string; content: unknown; calls: number }> = [];
    for await (const [message] of await agent.stream({ messages: [{ role: 'user', content: AGENT_QUESTION }] }, { streamMode: 'messages' })) {
      seen.push({ type: message.getType(), content: message.content, calls: (message as AIMessageChunk).tool_call_chunks?.length ?? 0 });
    }
    expect(seen.some((s) => s.type === 'ai' && s.calls === 1)).toBe(true);
    expect(seen.some((s) => s.type === 'tool' && s.content === '84')).toBe(true);
    expect(seen.filter((s) => s.type === 'ai').map((s) => s.content).join('')).toBe(AGENT_ANSWER);
  });

  it('supports withStructuredOutput through tool calling', async () => {
    const structured = chat.withStructuredOutput(PERSON_SCHEMA, { name: 'Person' });
    expect(await structured.invoke(EXTRACT)).toEqual({ name: 'Mia', age: 7 });
    const raw = await chat.withStructuredOutput(PERSON_SCHEMA, { name: 'Person', includeRaw: true }).invoke(EXTRACT);
    expect(raw.parsed).toEqual({ name: 'Mia', age: 7 });
    expect((raw.raw as AIMessage).tool_calls).toHaveLength(1);
  });

  it('passes our version of LangChain’s standard unit checks', async () => {
    const tolerant = new SafeEnsembleChatModel({ models, temperature: 0, maxTokens: 16, timeout: 60_000, stopSequences: ['\n\n'], maxRetries: 1 });
    expect(typeof tolerant.bindTools).toBe('function');
    expect(typeof tolerant.withStructuredOutput).toBe('function');
    expect(Object.keys(tolerant.getLsParams({} as never)).sort()).toEqual(['ls_max_tokens', 'ls_model_name', 'ls_model_type', 'ls_provider', 'ls_stop', 'ls_temperature']);
    expect(tolerant.getLsParams({} as never)).toMatchObject({ ls_provider: 'safe_ensemble', ls_model_type: 'chat', ls_max_tokens: 16, ls_stop: ['\n\n'], ls_temperature: 0 });
    expect(tolerant.profile).toMatchObject({ toolCalling: true, toolChoice: true, structuredOutput: true });
    const controller = new AbortController();
    controller.abort();
    await expect(tolerant.invoke(HELLO, { signal: controller.signal })).rejects.toThrow(/abort/i);
    await expect(
      (async () => {
        for await (const chunk of await tolerant.stream(HELLO, { signal: controller.signal })) void chunk;
      })(),
    ).rejects.toThrow(/abort/i);
    await tolerant.dispose();
  });

  it('takes knobs per call, via withConfig and via configurable', async () => {
    const short = await chat.invoke(HELLO, { maxNewTokens: 2 });
    expect((short.response_metadata.ensemble as EnsembleStats).generatedTokens).toBe(2);
    const viaConfig = await chat.withConfig({ maxNewTokens: 3 }).invoke(HELLO);
    expect((viaConfig.response_metadata.ensemble as EnsembleStats).generatedTokens).toBe(3);
    const viaConfigurable = await chat.invoke(HELLO, { configurable: { safeEnsemble: { strategy: 'single' } } } as never);
    expect((viaConfigurable.response_metadata.ensemble as EnsembleStats).forwardPasses[1]).toBe(0);
    await expect(chat.invoke(HELLO, { weights: [1] })).rejects.toThrow(/weights: must be 2 positive numbers/);
  });

  it('serializes and loads back', async () => {
    const json = JSON.stringify(chat);
    expect(JSON.parse(json).id).toEqual(['safe_ensemble', 'chat_models', 'SafeEnsembleChatModel']);
    const revived = await load<SafeEnsembleChatModel>(json, { optionalImportsMap: { 'safe_ensemble/chat_models': lib } });
    expect((await revived.invoke(HELLO)).content).toBe(HELLO_ANSWER);
    await revived.dispose();
  });
});

describe('chat messages and tool-call text', () => {
  it('converts system, human, AI-with-tool-calls and tool messages for chat templates', () => {
    const converted = toChatMessages([
      new SystemMessage('Be brief.'),
      new HumanMessage({ content: [{ type: 'text', text: 'Hi ' }, { type: 'text', text: 'there' }] }),
      new AIMessage({ content: '', tool_calls: [{ id: 'c1', name: 'calculator', args: { input: '1+1' }, type: 'tool_call' }] }),
      new ToolMessage({ content: '2', tool_call_id: 'c1', name: 'calculator' }),
    ]);
    expect(converted).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi there' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'calculator', arguments: { input: '1+1' } } }] },
      { role: 'tool', content: '2', tool_call_id: 'c1', name: 'calculator' },
    ]);
  });

  it('parses Qwen/Hermes, Mistral and Llama tool-call formats', () => {
    const hermes = parseToolCalls('Let me check.<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call><tool_call>{"name": "mul", "arguments": "{\\"a\\": 3}"}</tool_call>');
    expect(hermes.content).toBe('Let me check.');
    expect(hermes.toolCalls.map((c) => [c.name, c.args])).toEqual([['add', { a: 1, b: 2 }], ['mul', { a: 3 }]]);
    expect(new Set(hermes.toolCalls.map((c) => c.id)).size).toBe(2);
    const mistral = parseToolCalls('[TOOL_CALLS] [{"name": "AdderTool", "arguments": {"a": 1, "b": 2}}]');
    expect(mistral.toolCalls.map((c) => [c.name, c.args])).toEqual([['AdderTool', { a: 1, b: 2 }]]);
    const llama = parseToolCalls('<|python_tag|>{"name": "search", "parameters": {"q": "SAFE"}}');
    expect(llama.toolCalls.map((c) => [c.name, c.args])).toEqual([['search', { q: 'SAFE' }]]);
    expect(llama.content).toBe('');
    const broken = parseToolCalls('<tool_call>{"name": "add", "arguments": {"a": </tool_call>');
    expect(broken.toolCalls).toEqual([]);
    expect(broken.invalidToolCalls[0]).toMatchObject({ name: 'add', type: 'invalid_tool_call' });
    expect(parseToolCalls('Just text {not a call}.').toolCalls).toEqual([]);
  });

  it('holds back only text that may start a tool call', () => {
    expect(toolCallStart('The answer is 4.')).toBe(-1);
    expect(toolCallStart('Sure. <tool_')).toBe(6);
    expect(toolCallStart('  {"name"')).toBe(2);
    expect(toolCallStart('x [TOOL_CALLS] [')).toBe(2);
  });
});
