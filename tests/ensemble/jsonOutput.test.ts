/**
 * JSON Schema output (responseFormat / JsonSchemaConstraint): token masks from the trie walk
 * equal asking the grammar token by token, on real vocabularies; the text closes within
 * maxNewTokens; and 200 random schemas give outputs that parse and validate (ajv) under SAFE,
 * every-token and single, greedy and sampled, on the bundled models.
 */
import { InvalidArgumentError, SafeEnsemble, type EnsembleOptions } from '../../src/index';
import { JsonSchemaConstraint } from '../../src/research';
import { TokenTable } from '../../src/ensemble/tokenTable';
import { compileJsonSchema } from '../../src/text/json/schema';
import { bundledModels } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';
import { randomSchema, seeded, validatorFor } from '../helpers/jsonSchemas';
import { realTokenizer } from '../helpers/tokenizers';

const enc = (s: string) => new TextEncoder().encode(s);

describe('token masks', () => {
  const schema = { type: 'object', properties: { answer: { type: 'number', minimum: 0 }, reason: { type: 'string', maxLength: 40 }, tags: { type: 'array', items: { enum: ['a', 'b"c', 7] } } }, required: ['answer'] };
  const text = '{"answer": 12.5, "reason": "6 × 2 = 12, \\"plus\\" ½", "tags": ["b\\"c", 7]}';

  it.each(['qwen3', 'llama2', 'gemma3'] as const)('equal allows() for every token, at every byte of a text (%s)', async (name) => {
    const tok = await realTokenizer(name);
    const c = new JsonSchemaConstraint(schema);
    const bytes = enc(text);
    for (const first of [false, true]) {
      const table = TokenTable.of(tok, first);
      for (let at = 0; at <= bytes.length; at += first ? bytes.length : 3) {
        const written = bytes.subarray(0, at);
        const mask = c.allowedTokens(written, table);
        const close = c.allowedTokens(written, table, 6);
        // Near the budget's end the mask may keep fewer of the tokens allows() takes (where even
        // the shortest text no longer fits a byte a token: those that still close it in time),
        // never one it refuses, and never none where allows() takes some.
        let anyNear = false;
        for (let id = at % 7; id < table.size; id += 7) {
          const b = table.bytesOf(id);
          if (b.length === 0) continue;
          if (c.allows(written, b) !== (mask[id] === 1)) throw new Error(`${name} token ${id} ${JSON.stringify(new TextDecoder().decode(b))} after ${at} bytes: mask ${mask[id]}`);
          const near = c.allows(written, b, 6);
          anyNear ||= near;
          if (close[id] === 1 && !near) throw new Error(`${name} token ${id} near the budget's end after ${at} bytes: mask ${close[id]}`);
        }
        if (anyNear && !close.includes(1)) throw new Error(`${name}: nothing allowed near the budget's end after ${at} bytes`);
      }
    }
    // The same state again: the mask comes from the cache, not from another walk.
    const walks = c.counts.walks;
    const again = c.allowedTokens(bytes.subarray(0, 3), TokenTable.of(tok));
    expect(c.allowedTokens(bytes.subarray(0, 3), TokenTable.of(tok))).toBe(again);
    expect(c.counts.walks).toBeLessThanOrEqual(walks + 1);
    expect(c.counts.cached).toBeGreaterThan(0);
  });

  it('below the shortest text\'s bytes, keeps every token after which the text still closes in the tokens left', async () => {
    const table = TokenTable.of(await realTokenizer('qwen3'));
    const c = new JsonSchemaConstraint({ type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'] });
    const id = (s: string) => {
      const want = Buffer.from(enc(s));
      const ids: number[] = [];
      for (let i = 0; i < table.size; i++) if (want.equals(Buffer.from(table.bytesOf(i)))) ids.push(i);
      return ids;
    };
    // {"answer":0} has 12 bytes, Qwen3 spells it in 4 tokens: with 10 left, `{` and `{"` both still close.
    const mask = c.allowedTokens(new Uint8Array(0), table, 10);
    for (const t of ['{', '{"']) expect(id(t).some((i) => mask[i] === 1)).toBe(true);
    // With 4 left only a start that spells it in 4 does.
    const tight = c.allowedTokens(new Uint8Array(0), table, 4);
    expect(id('{"').some((i) => tight[i] === 1)).toBe(true);
    expect(id('{').some((i) => tight[i] === 1)).toBe(false);
  });

  it('refuses bad response formats with a typed error', () => {
    expect(() => new JsonSchemaConstraint({ type: 'string', pattern: 'a+' }, 'responseFormat')).toThrow(InvalidArgumentError);
  });
});

describe('generation to a JSON Schema', () => {
  let ensemble: SafeEnsemble;
  const questions = problemSet(4).map((p) => p.question);
  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: bundledModels() });
  });
  afterAll(() => ensemble.dispose());

  it('closes the text within maxNewTokens: a long string field still ends in valid JSON', async () => {
    const schema = { type: 'object', properties: { story: { type: 'string' }, answer: { type: 'integer' } }, required: ['story', 'answer'] };
    const valid = validatorFor(schema);
    // The shortest valid text, {"story":"","answer":0}, is 23 bytes: any budget from there on closes.
    for (const maxNewTokens of [23, 30, 41]) {
      for (const strategy of ['safe', 'single'] as const) {
        const r = await ensemble.generate(questions[0]!, { strategy, responseFormat: schema, maxNewTokens });
        expect(valid(JSON.parse(r.text))).toBe(true);
        expect(r.stats.generatedTokens).toBeLessThanOrEqual(maxNewTokens);
      }
    }
    // Fewer tokens than the shortest text has bytes: the shortest text in the longest tokens
    // (qwen-adder spells it in 8: {" story ":" "," answer ": 0 }), and nothing throws below that.
    for (const strategy of ['safe', 'single'] as const) {
      const r = await ensemble.generate(questions[0]!, { strategy, responseFormat: schema, maxNewTokens: 8 });
      expect(valid(JSON.parse(r.text))).toBe(true);
    }
    const short = await ensemble.generate(questions[0]!, { responseFormat: schema, maxNewTokens: 6 });
    expect(short.text.startsWith('{"story":"')).toBe(true);
  });

  it('takes OpenAI-style formats and JSON mode, and refuses a format beside a constraint', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'] };
    const openai = await ensemble.generate(questions[1]!, { responseFormat: { type: 'json_schema', json_schema: { name: 'a', schema } }, maxNewTokens: 24 });
    expect(validatorFor(schema)(JSON.parse(openai.text))).toBe(true);
    const json = await ensemble.generate(questions[1]!, { responseFormat: 'json', maxNewTokens: 24 });
    const parsed = JSON.parse(json.text) as unknown;
    expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
    await expect(ensemble.generate('x', { responseFormat: 'json', constraint: new JsonSchemaConstraint({}) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'responseFormat' });
    await expect(ensemble.generate('x', { responseFormat: 'yaml' as never })).rejects.toMatchObject({ field: 'responseFormat' });
  });

  const MODES: Array<[string, EnsembleOptions]> = [
    ['SAFE', {}],
    ['every-token', { strategy: 'every-token' }],
    ['single', { strategy: 'single' }],
    ['SAFE sampled', { temperature: 0.9, topP: 0.95 }],
    ['every-token sampled', { strategy: 'every-token', temperature: 1.1 }],
    ['single sampled', { strategy: 'single', temperature: 1, topK: 30 }],
  ];

  // Validity does not depend on where sessions run: the fuzz runs once, in the worker project (~50 s).
  const fuzz = process.env.SAFE_ENSEMBLE_EXECUTION === 'inline' ? it.skip : it;
  fuzz('200 random schemas: every output parses and validates (SAFE, every-token, single; greedy and sampled)', async () => {
    const random = seeded(2026);
    const finishes: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const schema = randomSchema(random);
      const [mode, options] = MODES[i % MODES.length]!;
      // Budgets from the shortest valid text's length on (below it no text of single bytes fits).
      const maxNewTokens = compileJsonSchema(schema).root.minBytes + 24;
      const r = await ensemble.generate(questions[i % questions.length]!, { ...options, ...(options.temperature ? { seed: i } : {}), responseFormat: schema, maxNewTokens });
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.text);
      } catch {
        throw new Error(`${mode}, schema ${JSON.stringify(schema)}: ${JSON.stringify(r.text)} does not parse`);
      }
      if (!validatorFor(schema)(parsed)) throw new Error(`${mode}, schema ${JSON.stringify(schema)}: ${r.text} does not validate`);
      finishes[r.finishReason] = (finishes[r.finishReason] ?? 0) + 1;
    }
    expect((finishes.eos ?? 0) + (finishes.length ?? 0)).toBe(200);
  }, 600_000);
});
