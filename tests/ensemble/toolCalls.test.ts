/**
 * Tool calls that always parse: the call grammar in each template syntax (Qwen/Hermes tags,
 * Mistral's [TOOL_CALLS] list, Llama 3 JSON), tool choice (auto: text or constrained calls;
 * required; a named tool; none), and generations on the bundled models whose calls parse and
 * validate against the called tool's schema in every strategy, greedy and sampled.
 */
import { SafeEnsemble, type EnsembleOptions } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { parseToolCalls } from '../../src/langchain/toolCalls';
import { accepts, advance, startConfigs } from '../../src/text/json/automaton';
import { compileToolCallGrammar } from '../../src/text/json/schema';
import { normalizeToolChoice, toolCallConstraint, toolCallSyntax } from '../../src/ensemble/toolChoice';
import { validatorFor } from '../helpers/jsonSchemas';

const enc = (s: string) => new TextEncoder().encode(s);
const WEATHER = { type: 'object', properties: { location: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['location'] };
const ADD = { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] };
const TOOLS = [
  { type: 'function', function: { name: 'get_current_weather', description: 'Weather in a city', parameters: WEATHER } },
  { type: 'function', function: { name: 'math_addition', description: 'Adds two numbers', parameters: ADD } },
];
const GRAMMAR_TOOLS = [
  { name: 'get_current_weather', parameters: WEATHER },
  { name: 'math_addition', parameters: ADD },
];

function allows(grammar: ReturnType<typeof compileToolCallGrammar>, text: string): boolean {
  return advance(startConfigs(grammar.root), enc(text)).some(accepts);
}

describe('the call grammar', () => {
  const hermes = toolCallSyntax('... <tool_call>\n{"name": ...} </tool_call> ...');
  it('Qwen/Hermes: auto takes text, or text then calls; every call names a bound tool with valid arguments', () => {
    const auto = compileToolCallGrammar(GRAMMAR_TOOLS, hermes, 'auto');
    expect(allows(auto, 'It is sunny.')).toBe(true);
    expect(allows(auto, '')).toBe(true);
    expect(allows(auto, 'Let me check.<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"}}\n</tool_call>')).toBe(true);
    expect(allows(auto, '<tool_call>\n{"name": "math_addition", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Oslo", "unit": "celsius"}}\n</tool_call>')).toBe(true);
    // Once the marker is written the call must be valid: unknown tools, missing or wrong arguments, an unclosed call.
    expect(allows(auto, '<tool_call>\n{"name": "search", "arguments": {}}\n</tool_call>')).toBe(false);
    expect(allows(auto, '<tool_call>\n{"name": "math_addition", "arguments": {"a": 1}}\n</tool_call>')).toBe(false);
    expect(allows(auto, '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Oslo", "unit": "kelvin"}}\n</tool_call>')).toBe(false);
    expect(allows(auto, '<tool_call>\n{"name": "math_addition", "arguments": {"a": 1, "b": 2}}')).toBe(false);
  });

  it('required takes calls only, up to the parallel-call limit', () => {
    const required = compileToolCallGrammar(GRAMMAR_TOOLS, hermes, 'required');
    const call = '<tool_call>\n{"name": "math_addition", "arguments": {"a": 1, "b": 2}}\n</tool_call>';
    expect(allows(required, 'Sure.')).toBe(false);
    expect(allows(required, call)).toBe(true);
    expect(allows(required, [call, call, call, call].join('\n'))).toBe(true);
    expect(allows(required, [call, call, call, call, call].join('\n'))).toBe(false);
  });

  it("Mistral's [TOOL_CALLS] list and Llama 3's JSON call", () => {
    const mistral = toolCallSyntax('{{ "[TOOL_CALLS]" }}');
    const list = compileToolCallGrammar(GRAMMAR_TOOLS, mistral, 'auto');
    expect(allows(list, 'Hi [TOOL_CALLS] [{"name": "math_addition", "arguments": {"a": 1, "b": 2}}, {"name": "get_current_weather", "arguments": {"location": "Rome"}}]')).toBe(true);
    expect(allows(list, '[TOOL_CALLS] [{"name": "nope", "arguments": {}}]')).toBe(false);
    const llama = toolCallSyntax('{{- \'"parameters": \' }} <|eot_id|>');
    expect(llama.argumentsKey).toBe('parameters');
    const one = compileToolCallGrammar(GRAMMAR_TOOLS, llama, 'required');
    expect(allows(one, '{"name": "math_addition", "parameters": {"a": 1, "b": 2}}')).toBe(true);
    expect(allows(one, '{"name": "math_addition", "arguments": {"a": 1, "b": 2}}')).toBe(false);
    // Auto for a markerless syntax leaves the reply free (prose or a JSON call).
    expect(toolCallConstraint(TOOLS, 'auto', '"parameters" <|eot_id|>')).toBeNull();
  });

  it('reads tool_choice as LangChain and OpenAI write it, and refuses unknown names', () => {
    expect(normalizeToolChoice('any')).toEqual({ mode: 'required' });
    expect(normalizeToolChoice({ type: 'function', function: { name: 'math_addition' } })).toEqual({ mode: 'required', name: 'math_addition' });
    expect(toolCallConstraint(TOOLS, 'none', null)).toBeNull();
    expect(() => toolCallConstraint(TOOLS, 'search', null)).toThrow(/no bound tool is named "search"/);
    expect(() => normalizeToolChoice(42)).toThrow(/toolChoice/);
  });
});

describe('generations with tools', () => {
  let ensemble: SafeEnsemble;
  const validators = { get_current_weather: validatorFor(WEATHER), math_addition: validatorFor(ADD) } as Record<string, (v: unknown) => boolean>;
  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: bundledModels() });
  });
  afterAll(() => ensemble.dispose());

  const MODES: Array<[string, EnsembleOptions]> = [
    ['SAFE', {}],
    ['every-token', { strategy: 'every-token' }],
    ['single', { strategy: 'single' }],
    ['SAFE sampled', { temperature: 0.9, seed: 3 }],
    ['single sampled', { strategy: 'single', temperature: 1.1, seed: 4 }],
  ];
  const ASKS = ['What is 23273 + 28?', "What's the weather in Paris?", 'Add 3 and 4, then tell me the weather in Oslo.'];

  it.each(MODES)('required and named calls parse and validate (%s)', async (_name, options) => {
    for (const [i, ask] of ASKS.entries()) {
      for (const toolChoice of ['required', i === 1 ? 'get_current_weather' : 'math_addition']) {
        const r = await ensemble.generate([{ role: 'user', content: ask }], { ...options, tools: TOOLS, toolChoice, maxNewTokens: 96 });
        const parsed = parseToolCalls(r.text);
        expect(parsed.invalidToolCalls).toEqual([]);
        expect(parsed.toolCalls.length).toBeGreaterThan(0);
        for (const call of parsed.toolCalls) {
          if (toolChoice !== 'required') expect(call.name).toBe(toolChoice);
          expect(validators[call.name]!(call.args)).toBe(true);
        }
      }
    }
  });

  it('auto: the reply is text, or calls that parse', async () => {
    for (const ask of ASKS) {
      const r = await ensemble.generate([{ role: 'user', content: ask }], { tools: TOOLS, maxNewTokens: 64 });
      const parsed = parseToolCalls(r.text);
      expect(parsed.invalidToolCalls).toEqual([]);
      for (const call of parsed.toolCalls) expect(validators[call.name]!(call.args)).toBe(true);
    }
  });
});
