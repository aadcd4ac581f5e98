/**
 * Random JSON Schemas of the kinds structured output uses (nested objects, arrays, enums,
 * numbers with and without bounds, strings with lengths, required and optional properties,
 * unions, $refs) and random values valid against them, from a seeded generator.
 */
import Ajv from 'ajv';
import { seededRandom } from '../../src/demo/random';

/** The seeded generator the tests draw schemas and values from. */
export const seeded = seededRandom;

type Schema = Record<string, unknown>;
const KEYS = ['answer', 'name', 'id', 'items', 'value', 'note', 'a b', 'quote"d', 'ünï', 'x', 'total', 'steps'];
const WORDS = ['yes', 'no', 'maybe', 'a "quoted" word', 'tab\there', 'ünïcödé', 'back\\slash', '日本', ''];

/** A random schema at most `depth` levels deep. */
export function randomSchema(random: () => number, depth = 3): Schema {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const kinds = depth > 0 ? ['object', 'object', 'array', 'string', 'number', 'integer', 'boolean', 'enum', 'union', 'null'] : ['string', 'number', 'integer', 'boolean', 'enum', 'null'];
  const kind = pick(kinds);
  switch (kind) {
    case 'object': {
      const n = 1 + Math.floor(random() * 4);
      const keys = [...KEYS].sort(() => random() - 0.5).slice(0, n);
      const properties = Object.fromEntries(keys.map((k) => [k, randomSchema(random, depth - 1)]));
      const required = keys.filter(() => random() < 0.6);
      return { type: 'object', properties, required, ...(random() < 0.5 ? { additionalProperties: false } : {}) };
    }
    case 'array': {
      const minItems = random() < 0.3 ? 1 : 0;
      return { type: 'array', items: randomSchema(random, depth - 1), ...(minItems ? { minItems } : {}), ...(random() < 0.5 ? { maxItems: minItems + 1 + Math.floor(random() * 3) } : {}) };
    }
    case 'string':
      return random() < 0.4 ? { type: 'string', ...(random() < 0.5 ? { minLength: 1 } : {}), maxLength: 3 + Math.floor(random() * 12) } : { type: 'string' };
    case 'number':
    case 'integer': {
      const s: Schema = { type: kind };
      if (random() < 0.4) s.minimum = Math.floor(random() * 200) - 100;
      if (random() < 0.4) s.maximum = (typeof s.minimum === 'number' ? s.minimum : -50) + 2 + Math.floor(random() * 300) + (kind === 'number' ? 0.5 : 0);
      if (random() < 0.15 && typeof s.minimum === 'number') s.exclusiveMinimum = s.minimum;
      if (random() < 0.15 && typeof s.maximum === 'number') s.exclusiveMaximum = s.maximum;
      return s;
    }
    case 'boolean':
      return { type: 'boolean' };
    case 'null':
      return { type: 'null' };
    case 'enum': {
      const values = [...new Set([pick(WORDS), pick(WORDS), Math.floor(random() * 20), random() < 0.3 ? null : pick(WORDS)])];
      return { enum: values };
    }
    default:
      return { anyOf: [randomSchema(random, depth - 1), randomSchema(random, depth - 1)] };
  }
}

/** A compiled validator for `schema` (ajv: counts code points for lengths, as the grammar does). */
export function validatorFor(schema: Schema): (value: unknown) => boolean {
  const ajv = new Ajv({ strict: false, allErrors: false });
  const check = ajv.compile(schema);
  return (value) => check(value) as boolean;
}

/** A random value valid against `schema` (one of the texts the grammar writes: properties in order). */
export function randomValue(schema: Schema, random: () => number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  if (Array.isArray(schema.enum)) return pick(schema.enum);
  if (Array.isArray(schema.anyOf)) return randomValue(pick(schema.anyOf as Schema[]), random);
  switch (schema.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const required = (schema.required as string[] | undefined) ?? [];
      for (const [k, v] of Object.entries((schema.properties as Record<string, Schema>) ?? {})) if (required.includes(k) || random() < 0.5) out[k] = randomValue(v, random);
      return out;
    }
    case 'array': {
      const min = (schema.minItems as number | undefined) ?? 0;
      const max = Math.min((schema.maxItems as number | undefined) ?? min + 3, min + 3);
      return Array.from({ length: min + Math.floor(random() * (max - min + 1)) }, () => randomValue(schema.items as Schema, random));
    }
    case 'string': {
      const min = (schema.minLength as number | undefined) ?? 0;
      const max = (schema.maxLength as number | undefined) ?? 12;
      const chars = ['a', ' ', '"', '\\', 'é', '日', '\n', '😀', 'z', '/'];
      return Array.from({ length: min + Math.floor(random() * (Math.min(max, min + 8) - min + 1)) }, () => pick(chars)).join('');
    }
    case 'number':
    case 'integer': {
      const lo = (schema.minimum as number | undefined) ?? -1000;
      const hi = (schema.maximum as number | undefined) ?? 1000;
      for (;;) {
        let v = lo + random() * (hi - lo);
        v = schema.type === 'integer' ? Math.round(v) : Math.round(v * 100) / 100;
        if (v < lo || v > hi) continue;
        if (schema.exclusiveMinimum !== undefined && v <= (schema.exclusiveMinimum as number)) continue;
        if (schema.exclusiveMaximum !== undefined && v >= (schema.exclusiveMaximum as number)) continue;
        return Object.is(v, -0) ? 0 : v;
      }
    }
    case 'boolean':
      return random() < 0.5;
    default:
      return null;
  }
}
