/**
 * The constraint seam: a TextConstraint masks what the drafter drafts, what the ensemble may pick
 * and what sampling draws from, in every strategy, for local and served members. Shown with the
 * trivial constraint that ships with the seam (a set of allowed strings).
 */
import { InvalidArgumentError, loadModel, loadRemoteModel, SafeEnsemble, type EnsembleOptions, type TextConstraint } from '../../src/index';
import { AllowedStrings } from '../../src/research';
import { bundledModels } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';
import { EngineServer } from '../../tools/fixtures/engineServer';
import { parseToolCalls } from '../../src/langchain/toolCalls';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
const enc = (s: string) => new TextEncoder().encode(s);

describe('AllowedStrings', () => {
  const c = new AllowedStrings(['42', '4 apples', 'none']);
  it('allows exactly the continuations that stay a prefix of an allowed string', () => {
    expect(c.allows(enc(''), enc('4'))).toBe(true);
    expect(c.allows(enc('4'), enc('2'))).toBe(true);
    expect(c.allows(enc('4'), enc(' app'))).toBe(true);
    expect(c.allows(enc('4'), enc('3'))).toBe(false);
    expect(c.allows(enc('42'), enc('0'))).toBe(false);
    expect(c.allows(enc(''), enc('nonexistent'))).toBe(false);
  });
  it('allows the end only after a whole allowed string', () => {
    expect(c.allowsEnd(enc('42'))).toBe(true);
    expect(c.allowsEnd(enc('4'))).toBe(false);
    expect(c.allowsEnd(enc(''))).toBe(false);
  });
  it('refuses an empty set', () => {
    expect(() => new AllowedStrings([])).toThrow(InvalidArgumentError);
  });
});

describe('generation under a constraint', () => {
  let ensemble: SafeEnsemble;
  const problems = problemSet(3);
  const answers = problems.map((p) => [`The answer is ${p.answer}.`, `The answer is ${p.answer + 1}.`, `${p.answer}`, 'I do not know.']);
  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: bundledModels() });
  });
  afterAll(() => ensemble.dispose());

  const CASES: Array<[string, EnsembleOptions]> = [
    ['SAFE + UniTE', {}],
    ['SAFE + GaC', { baseEnsembler: 'gac' }],
    ['every-token', { strategy: 'every-token' }],
    ['gac-threshold', { strategy: 'gac-threshold' }],
    ['single', { strategy: 'single' }],
    ['sampled SAFE', { temperature: 1.2, seed: 5 }],
    ['sampled SAFE, top-k cut', { temperature: 1, topK: 5, seed: 6 }],
    ['sampled every-token', { strategy: 'every-token', temperature: 1, seed: 7 }],
  ];
  it.each(CASES)('%s writes one of the allowed strings, and ends there', async (_name, options) => {
    for (let i = 0; i < problems.length; i++) {
      const result = await ensemble.generate(problems[i]!.question, { ...options, maxNewTokens: 40, constraint: new AllowedStrings(answers[i]!), trace: true });
      expect(answers[i]).toContain(result.text);
      expect(result.finishReason).toBe('eos');
      // Every winner the ensemble committed continues the text it was decided after.
      for (const record of result.trace ?? []) expect(record.winner.text.length).toBeGreaterThan(0);
    }
  });

  it('consults the constraint only with a constraint set, and with the written text', async () => {
    const calls: string[] = [];
    const spy: TextConstraint = {
      allows: (written, next) => {
        calls.push(new TextDecoder().decode(written));
        return 'The answer'.startsWith(new TextDecoder().decode(written) + new TextDecoder().decode(next));
      },
      allowsEnd: (written) => new TextDecoder().decode(written) === 'The answer',
    };
    const result = await ensemble.generate(problems[0]!.question, { constraint: spy, maxNewTokens: 20 });
    expect(result.text).toBe('The answer');
    expect(calls.length).toBeGreaterThan(0);
    // What was written so far is always a prefix of the allowed text.
    expect(calls.every((w) => 'The answer'.startsWith(w))).toBe(true);
  });

  it('fails with a typed error when the constraint leaves nowhere to go, and names the fix', async () => {
    const nothing: TextConstraint = { allows: () => false, allowsEnd: () => false };
    await expect(ensemble.generate(problems[0]!.question, { constraint: nothing })).rejects.toThrow(/allows no token[\s\S]*allows\(\)\/allowsEnd\(\)/);
    // The ensemble still works afterwards.
    expect((await ensemble.generate(problems[0]!.question, { maxNewTokens: 4 })).text.length).toBeGreaterThan(0);
  });

  it('refuses a constraint that is not one', async () => {
    await expect(ensemble.generate('x', { constraint: { allows: 1 } as unknown as TextConstraint })).rejects.toThrow(InvalidArgumentError);
  });
});

describe('a constraint with a served member (known through its top log-probabilities)', () => {
  let server: EngineServer;
  afterAll(() => server?.close());
  it.each([
    ['greedy', {}],
    ['sampled', { temperature: 1, seed: 3 }],
  ] as const)('%s: the served drafter drafts token by token under the constraint', async (_name, options) => {
    server ??= await EngineServer.start({ engine: 'sglang', model: QWEN });
    const ensemble = new SafeEnsemble([await loadRemoteModel({ engine: 'sglang', url: server.url, tokenizer: QWEN }), await loadModel(MISTRAL)]);
    try {
      const problem = problemSet(1)[0]!;
      const allowed = [`The answer is ${problem.answer}.`, 'I do not know.'];
      const result = await ensemble.generate(problem.question, { ...options, maxNewTokens: 40, constraint: new AllowedStrings(allowed) });
      expect(allowed).toContain(result.text);
      expect(result.finishReason).toBe('eos');
      // A JSON Schema and a forced tool call through the same path: valid whatever the server returns.
      const schema = { type: 'object', properties: { answer: { type: 'integer' }, sure: { type: 'boolean' } }, required: ['answer', 'sure'] };
      const json = await ensemble.generate(problem.question, { ...options, maxNewTokens: 48, responseFormat: schema });
      const value = JSON.parse(json.text) as { answer: unknown; sure: unknown };
      expect(Number.isInteger(value.answer) && typeof value.sure === 'boolean').toBe(true);
      const tools = [{ type: 'function', function: { name: 'math_addition', parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } } }];
      const call = await ensemble.generate([{ role: 'user', content: 'What is 3 + 4?' }], { ...options, maxNewTokens: 64, tools, toolChoice: 'required' });
      expect(parseToolCalls(call.text).toolCalls.map((c) => c.name)).toEqual(['math_addition']);
    } finally {
      await ensemble.dispose();
    }
  });
});
