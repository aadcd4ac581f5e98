/**
 * The JSON-Schema grammar (src/text/json): it accepts the texts of valid values, every text it
 * accepts parses and validates (checked with ajv, an independent validator), it refuses
 * keywords it cannot enforce, and bounded numbers never lead into a dead end.
 */
import { accepts, advance, restBytes, startConfigs, type Config } from '../../src/text/json/automaton';
import { compileJsonSchema } from '../../src/text/json/schema';
import { InvalidArgumentError } from '../../src/errors';
import { randomSchema, randomValue, seeded, validatorFor } from '../helpers/jsonSchemas';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function acceptsText(start: Config[], text: string): boolean {
  const after = advance(start, enc(text));
  return after.some(accepts);
}

/** Whether some completion of at most `depth` bytes over `alphabet` ends the text. */
function completable(states: Config[], alphabet: Uint8Array, depth: number): boolean {
  if (states.some(accepts)) return true;
  if (depth === 0) return false;
  for (const b of alphabet) {
    const next = advance(states, Uint8Array.of(b));
    if (next.length > 0 && completable(next, alphabet, depth - 1)) return true;
  }
  return false;
}

/** JSON with `", "` and `": "` between tokens. */
function spacedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(spacedJson).join(', ')}]`;
  if (v && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${spacedJson(x)}`).join(', ')}}`;
  return JSON.stringify(v);
}

describe('JSON Schema grammar', () => {
  it('accepts valid values written compactly and with single spaces, for 300 random schemas', () => {
    const random = seeded(11);
    for (let i = 0; i < 300; i++) {
      const schema = randomSchema(random);
      const start = startConfigs(compileJsonSchema(schema).root);
      const valid = validatorFor(schema);
      for (let j = 0; j < 4; j++) {
        const value = randomValue(schema, random);
        expect(valid(value)).toBe(true);
        const compact = JSON.stringify(value);
        if (!acceptsText(start, compact)) throw new Error(`schema ${JSON.stringify(schema)} refused ${compact}`);
        const spaced = spacedJson(value);
        if (!acceptsText(start, spaced)) throw new Error(`schema ${JSON.stringify(schema)} refused ${spaced}`);
      }
    }
  });

  it('every text it accepts parses and validates (random mutations of valid texts)', () => {
    const random = seeded(12);
    let acceptedMutants = 0;
    for (let i = 0; i < 300; i++) {
      const schema = randomSchema(random);
      const start = startConfigs(compileJsonSchema(schema).root);
      const valid = validatorFor(schema);
      const text = enc(JSON.stringify(randomValue(schema, random)));
      for (let j = 0; j < 20; j++) {
        const mutant = Array.from(text);
        const at = Math.floor(random() * (mutant.length + 1));
        const op = random();
        const byte = enc(' -.0123456789e"\\,:{}[]ntfaé')[Math.floor(random() * 25)]!;
        if (op < 0.4) mutant.splice(at, 1);
        else if (op < 0.7) mutant.splice(at, 0, byte);
        else mutant[Math.min(at, mutant.length - 1)] = byte;
        const bytes = Uint8Array.from(mutant);
        if (!advance(start, bytes).some(accepts)) continue;
        acceptedMutants++;
        let parsed: unknown;
        try {
          parsed = JSON.parse(dec(bytes));
        } catch {
          throw new Error(`accepted ${dec(bytes)}, which does not parse (schema ${JSON.stringify(schema)})`);
        }
        if (!valid(parsed)) throw new Error(`accepted ${dec(bytes)}, which the schema refuses: ${JSON.stringify(schema)}`);
      }
    }
    expect(acceptedMutants).toBeGreaterThan(100);
  });

  it('allows at most one blank between tokens, none before the value and none after it', () => {
    const start = startConfigs(compileJsonSchema({ type: 'object', properties: { a: { type: 'array', items: { type: 'integer' } } } }).root);
    expect(acceptsText(start, '{ "a": [1, 2] }')).toBe(true);
    expect(acceptsText(start, '{\n"a":\n[1,\n2]\n}')).toBe(true);
    expect(acceptsText(start, '{  "a": [1]}')).toBe(false);
    expect(advance(start, enc(' '))).toEqual([]);
    expect(advance(start, enc('\n'))).toEqual([]);
    expect(acceptsText(start, '{"a": [1]} ')).toBe(false);
  });

  it('bounded numbers: complete exactly within the bounds, and every allowed prefix can still end', () => {
    const random = seeded(13);
    const alphabet = enc('-0123456789.');
    for (let i = 0; i < 60; i++) {
      const integer = random() < 0.5;
      const lo = Math.round((random() * 40 - 20) * (integer ? 1 : 4)) / (integer ? 1 : 4);
      const hi = lo + (integer ? 1 + Math.floor(random() * 30) : Math.round(random() * 40) / 4 + 0.25);
      const schema = { type: integer ? 'integer' : 'number', minimum: lo, ...(random() < 0.3 ? { exclusiveMaximum: hi } : { maximum: hi }) };
      const compiled = compileJsonSchema(schema);
      const start = startConfigs(compiled.root);
      const valid = validatorFor(schema);
      // Every text of up to 4 bytes over the number alphabet.
      const walk = (prefix: number[], states: Config[]) => {
        if (prefix.length > 0) {
          const text = dec(Uint8Array.from(prefix));
          const ok = states.some(accepts);
          let expected = false;
          try {
            expected = /^-?(0|[1-9]\d*)(\.\d+)?$/.test(text) && valid(JSON.parse(text));
          } catch {
            expected = false;
          }
          if (ok !== expected) throw new Error(`${JSON.stringify(schema)}: ${text} accepted=${ok}, valid=${expected}`);
          // restBytes is a true shortest completion bound: some completion of that length exists.
          const rest = Math.min(...states.map(restBytes));
          if (!completable(states, alphabet, Math.min(rest, 6)) && rest <= 6) throw new Error(`${JSON.stringify(schema)}: prefix ${text} is allowed but cannot end within ${rest} bytes`);
        }
        if (prefix.length === 4) return;
        for (const b of alphabet) {
          const next = advance(states, Uint8Array.of(b));
          if (next.length > 0) walk([...prefix, b], next);
        }
      };
      walk([], start);
      expect(compiled.root.minBytes).toBeGreaterThan(0);
    }
  });

  it('refuses keywords it cannot enforce, naming them', () => {
    for (const [schema, word] of [
      [{ type: 'string', pattern: '^a+$' }, 'pattern'],
      [{ not: { type: 'string' } }, 'not'],
      [{ type: 'number', multipleOf: 3 }, 'multipleOf'],
      [{ type: 'array', items: [{ type: 'string' }] }, 'tuple'],
      [{ type: 'object', properties: { a: { type: 'string' } }, required: ['b'] }, '"b"'],
      [{ type: 'integer', minimum: 1.2, maximum: 1.8 }, 'no integer'],
      [{ $ref: '#/definitions/missing' }, 'points nowhere'],
      [{ type: 'date' }, 'unknown type'],
    ] as const) {
      let error: unknown;
      try {
        compileJsonSchema(schema, 'responseFormat');
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).field).toBe('responseFormat');
      expect((error as Error).message).toContain(word);
    }
  });

  it('follows local $refs, allOf merges and nullable types as zod-to-json-schema writes them', () => {
    const schema = {
      type: 'object',
      properties: { first: { $ref: '#/definitions/point' }, second: { allOf: [{ $ref: '#/definitions/point' }, { properties: { label: { type: ['string', 'null'] } }, required: ['label'] }] } },
      required: ['first', 'second'],
      definitions: { point: { type: 'object', properties: { x: { type: 'integer' }, y: { type: 'integer' } }, required: ['x', 'y'], additionalProperties: false } },
    };
    const start = startConfigs(compileJsonSchema(schema).root);
    expect(acceptsText(start, '{"first":{"x":1,"y":2},"second":{"x":3,"y":4,"label":null}}')).toBe(true);
    expect(acceptsText(start, '{"first":{"x":1,"y":2},"second":{"x":3,"y":4}}')).toBe(false);
    expect(acceptsText(start, '{"first":{"x":1.5,"y":2},"second":{"x":3,"y":4,"label":"a"}}')).toBe(false);
  });
});
