/**
 * What LangChain's standard chat-model integration tests ask of structured output and tool
 * calling, on the bundled models (trained on word problems, never on these tools): every
 * withStructuredOutput method, with and without includeRaw; tools they have never seen under
 * every tool_choice; streamed tool calls; a tool-use history; and SafeEnsembleLLM's
 * responseFormat knob; a constrained stream left every way a consumer can leave it. The replies
 * parse and validate because decoding is constrained.
 */
import { AIMessage, AIMessageChunk, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { z } from 'zod';
import { SafeEnsembleChatModel, SafeEnsembleLLM } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { validatorFor } from '../helpers/jsonSchemas';

const models = bundledModels();
const Answer = z.object({ answer: z.number().describe('the number asked for') });
const mathAddition = tool(async ({ a, b }: { a: number; b: number }) => String(a + b), { name: 'math_addition', description: 'Adds a and b.', schema: z.object({ a: z.number(), b: z.number() }) });
const weather = tool(async () => 'sunny', { name: 'get_current_weather', description: 'Weather at a location.', schema: z.object({ location: z.string(), unit: z.enum(['celsius', 'fahrenheit']).optional() }) });
const adder = { name: 'AdderTool', description: 'Adds numbers', parameters: { type: 'object', properties: { numbers: { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 3 } }, required: ['numbers'] } };
const ASK = [new HumanMessage('What is 3 + 4?')];

describe('structured output and tools on the bundled models', () => {
  let chat: SafeEnsembleChatModel;
  beforeAll(() => {
    chat = new SafeEnsembleChatModel({ models, maxNewTokens: 48 });
  });
  afterAll(async () => {
    await chat.dispose?.();
  });

  it("withStructuredOutput (jsonMode): the reply is a JSON object (the schema is the parser's: small models rarely meet it unasked)", async () => {
    const raw = await chat.withStructuredOutput(Answer, { method: 'jsonMode', includeRaw: true }).invoke(ASK);
    const content = JSON.parse((raw.raw as AIMessage).content as string) as unknown;
    expect(typeof content === 'object' && content !== null && !Array.isArray(content)).toBe(true);
    expect(raw.parsed === null || Answer.safeParse(raw.parsed).success).toBe(true);
  });

  it.each(['functionCalling', 'jsonSchema'] as const)('withStructuredOutput (%s) returns a value of the schema, with includeRaw too', async (method) => {
    const structured = chat.withStructuredOutput(Answer, { method, name: 'Answer' });
    const value = await structured.invoke(ASK);
    expect(Answer.safeParse(value).success).toBe(true);
    const raw = await chat.withStructuredOutput(Answer, { method, name: 'Answer', includeRaw: true }).invoke(ASK);
    expect(Answer.safeParse(raw.parsed).success).toBe(true);
    expect(AIMessage.isInstance(raw.raw) || AIMessageChunk.isInstance(raw.raw)).toBe(true);
    if (method === 'functionCalling') expect((raw.raw as AIMessage).tool_calls?.[0]?.name).toBe('Answer');
    else expect(JSON.parse((raw.raw as AIMessage).content as string)).toEqual(raw.parsed);
  });

  it('withStructuredOutput takes a plain JSON Schema', async () => {
    const schema = { type: 'object', title: 'Person', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'] };
    const value = await chat.withStructuredOutput(schema, { method: 'jsonSchema' }).invoke('Extract the person: Mia is 7 years old.');
    expect(validatorFor(schema)(value)).toBe(true);
  });

  it.each([['any'], ['required'], ['math_addition']])('tools never seen in training are called with valid arguments (tool_choice %s)', async (choice) => {
    const bound = chat.bindTools([mathAddition, weather, adder], { tool_choice: choice });
    const reply = await bound.invoke(ASK);
    expect(reply.invalid_tool_calls ?? []).toEqual([]);
    expect(reply.tool_calls!.length).toBeGreaterThan(0);
    for (const call of reply.tool_calls!) {
      if (choice === 'math_addition') expect(call.name).toBe('math_addition');
      if (call.name === 'math_addition') expect(typeof call.args.a === 'number' && typeof call.args.b === 'number').toBe(true);
      if (call.name === 'get_current_weather') expect(typeof call.args.location).toBe('string');
      if (call.name === 'AdderTool') expect(validatorFor(adder.parameters)(call.args)).toBe(true);
    }
  });

  it('auto: text, or calls that parse', async () => {
    const reply = await chat.bindTools([mathAddition, weather]).invoke(ASK);
    expect(reply.invalid_tool_calls ?? []).toEqual([]);
  });

  it('streams a forced tool call as tool_call_chunks that concatenate to what invoke() returns', async () => {
    const bound = chat.bindTools([mathAddition], { tool_choice: 'math_addition' });
    const invoked = await bound.invoke(ASK);
    let merged: AIMessageChunk | undefined;
    for await (const chunk of await bound.stream(ASK)) merged = merged ? merged.concat(chunk) : chunk;
    expect(merged!.tool_calls!.map((c) => [c.name, c.args])).toEqual(invoked.tool_calls!.map((c) => [c.name, c.args]));
    expect(merged!.tool_call_chunks!.length).toBeGreaterThan(0);
  });

  it('continues a tool-use history (a call, its result) with a reply or a valid call', async () => {
    const history = [
      new HumanMessage('What is 3 + 4?'),
      new AIMessage({ content: '', tool_calls: [{ id: 'call_1', name: 'math_addition', args: { a: 3, b: 4 }, type: 'tool_call' }] }),
      new ToolMessage({ content: '7', tool_call_id: 'call_1', name: 'math_addition' }),
    ];
    const reply = await chat.bindTools([mathAddition]).invoke(history);
    expect(reply.invalid_tool_calls ?? []).toEqual([]);
    const forced = await chat.bindTools([mathAddition], { tool_choice: 'any' }).invoke(history);
    expect(forced.tool_calls![0]!.name).toBe('math_addition');
  });

  it.each(['signal', 'timeout', 'break', 'throw', 'abandon'] as const)('a streamed forced tool call left by %s: the next calls, constrained and free, equal fresh ones', async (how) => {
    const bound = chat.bindTools([mathAddition, weather], { tool_choice: 'any' });
    const reference = await bound.invoke(ASK);
    const free = (await chat.invoke(ASK)).content;
    const controller = new AbortController();
    const options = how === 'timeout' ? { timeout: 40 } : how === 'signal' ? { signal: controller.signal } : {};
    let outcome = 'finished';
    let chunks = 0;
    try {
      const iterator = (await bound.stream(ASK, options))[Symbol.asyncIterator]();
      if (how === 'abandon') {
        await iterator.next();
        outcome = 'abandoned';
      } else
        for await (const _chunk of { [Symbol.asyncIterator]: () => iterator }) {
          void _chunk;
          chunks++;
          if (how === 'signal') controller.abort();
          if (how === 'break') break;
          if (how === 'throw') throw new Error('consumer failed');
          if (how === 'timeout') await new Promise((r) => setTimeout(r, 50));
        }
    } catch (e) {
      outcome = `${(e as Error).name}: ${(e as Error).message}`;
    }
    if (how === 'signal' || how === 'timeout') expect(outcome).toMatch(/Abort|Timeout/);
    if (how === 'throw') expect(outcome).toBe('Error: consumer failed');
    if (how === 'break') expect(chunks).toBe(1);
    const again = await bound.invoke(ASK);
    expect(again.tool_calls!.map((c) => [c.name, c.args])).toEqual(reference.tool_calls!.map((c) => [c.name, c.args]));
    expect((await chat.invoke(ASK)).content).toBe(free);
  });

  it('SafeEnsembleLLM: responseFormat as a constructor knob, a call option and a configurable', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'] };
    const llm = new SafeEnsembleLLM({ models, maxNewTokens: 24, responseFormat: schema });
    expect(validatorFor(schema)(JSON.parse(await llm.invoke('Q: What is 3 + 4?\nA:')))).toBe(true);
    const json = JSON.parse(await llm.invoke('Q: What is 3 + 4?\nA:', { responseFormat: 'json' } as never)) as unknown;
    expect(typeof json).toBe('object');
    const viaConfig = await llm.invoke('Q: What is 3 + 4?\nA:', { configurable: { safeEnsemble: { responseFormat: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } } });
    expect(typeof (JSON.parse(viaConfig) as { ok: unknown }).ok).toBe('boolean');
    await llm.dispose?.();
  });
});
