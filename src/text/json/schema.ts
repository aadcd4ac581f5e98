/**
 * JSON Schema → the grammar nodes the JSON automaton walks (automaton.ts). Compiled once per
 * schema; every keyword that would change which texts are valid is either enforced or refused
 * with an error naming it, so an output that fits the grammar always validates.
 * @module
 */
import { InvalidArgumentError } from '../../errors.js';
import { utf8 } from '../bytes.js';

/** A value the grammar allows, as a node of a compiled schema. */
export type GrammarNode =
  | { kind: 'object'; id: number; properties: PropertyNode[]; freeKeys: GrammarNode | null; minBytes: number }
  | { kind: 'array'; id: number; items: GrammarNode; minItems: number; maxItems: number; minBytes: number }
  | { kind: 'string'; id: number; minLength: number; maxLength: number; minBytes: number }
  | { kind: 'number'; id: number; integer: boolean; minimum: Bound | null; maximum: Bound | null; minBytes: number }
  | { kind: 'literal'; id: number; options: Uint8Array[]; minBytes: number }
  | { kind: 'union'; id: number; options: GrammarNode[]; minBytes: number }
  /** Parts written back to back (no whitespace between); `repeat`: then up to `max - 1` more of `next`, or the end. */
  | { kind: 'sequence'; id: number; parts: GrammarNode[]; repeat: { next: GrammarNode; max: number } | null; minBytes: number }
  /** Free text that ends where `marker` has been written in full (what follows the node then follows); `endable`: or with the response. */
  | { kind: 'text'; id: number; marker: Uint8Array; endable: boolean; minBytes: number };

/** An inclusive or exclusive numeric bound. */
export interface Bound {
  value: number;
  exclusive: boolean;
}

/** A property of an object node: its key as JSON text (quotes included) and its value. */
export interface PropertyNode {
  key: Uint8Array;
  value: GrammarNode;
  required: boolean;
}

/** A compiled schema: the root node and the largest shortest-completion any node needs. */
export interface CompiledSchema {
  root: GrammarNode;
  /** Most bytes the shortest value of any one node takes (bounds how far one byte can push the end away). */
  maxMinBytes: number;
}

/** How deep `{}` / `true` schemas (any JSON value) may nest objects and arrays. */
const ANY_DEPTH = 6;
/** Most `$ref` expansions along one path (a recursive schema is cut off there, to its shortest value). */
const MAX_REF_DEPTH = 8;
/** Integer digits a number may have (beyond 15 a double no longer holds the value exactly). */
export const MAX_INTEGER_DIGITS = 15;

/** Keywords that only annotate (never change validity) or are handled by their siblings. */
const ANNOTATIONS = new Set([
  '$schema', '$id', '$comment', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly',
  'definitions', '$defs', 'format', 'contentEncoding', 'contentMediaType', 'additionalProperties', 'strict',
]);

const ENFORCED = new Set(['type', 'properties', 'required', 'items', 'minItems', 'maxItems', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', 'nullable']);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type SchemaObject = Record<string, unknown>;

/**
 * Compiles a JSON Schema (draft-07 / 2020-12 style, as zod-to-json-schema and LangChain tools
 * write them). Objects are written with their properties in the schema's order, optional ones
 * skippable, no others; `additionalProperties` is therefore never needed. `format` is an
 * annotation (as validators treat it by default). Refused: `pattern`, `patternProperties`,
 * `not`, `if`/`then`, `multipleOf`, `uniqueItems`, tuples and other keywords that restrict values
 * in ways this grammar cannot write.
 */
export function compileJsonSchema(schema: unknown, field = 'schema'): CompiledSchema {
  const compiler = new Compiler(schema, field);
  const root = compiler.node(schema, '#', 0, 0);
  return { root, maxMinBytes: compiler.maxMinBytes };
}

/** How a chat template writes tool calls. */
export interface ToolCallSyntax {
  /** Text before a call (Qwen/Hermes: `<tool_call>\n`), or before the list of calls (Mistral: `[TOOL_CALLS]`). */
  open: string;
  /** The start of `open` that tells a call begins (`<tool_call>`): free text becomes a call there. */
  marker: string;
  /** Text after a call (`\n</tool_call>`); empty where the JSON ends it. */
  close: string;
  /** Between two calls written one after another (`\n`). */
  separator: string;
  /** The key of a call's arguments: `arguments` (Qwen, Mistral) or `parameters` (Llama 3). */
  argumentsKey: 'arguments' | 'parameters';
  /** The calls form one JSON array after `open` (Mistral). */
  list: boolean;
  /** Most calls in one reply (1: no parallel calls). */
  maxCalls: number;
}

/** A tool the grammar may call: its name and its arguments' JSON Schema. */
export interface GrammarTool {
  name: string;
  parameters: unknown;
}

/**
 * The grammar of a reply that calls tools as `syntax` writes calls. `auto`: free text, in which
 * `syntax.open` starts calls (from there on constrained); `required`: only calls.
 */
export function compileToolCallGrammar(tools: readonly GrammarTool[], syntax: ToolCallSyntax, mode: 'auto' | 'required', field = 'tools'): CompiledSchema {
  if (tools.length === 0) throw new InvalidArgumentError(field, `${field}: a constrained tool call needs at least one tool.`);
  const c = new Compiler(null, field);
  const calls = tools.map((t, i) => {
    const params = t.parameters ?? { type: 'object' };
    const args = c.withRoot(params, () => c.node(params, `#/tools/${i}/parameters`, 0, 0));
    return c.objectOf([
      { key: utf8(JSON.stringify('name')), value: c.bytesLiteral([utf8(JSON.stringify(t.name))]), required: true },
      { key: utf8(JSON.stringify(syntax.argumentsKey)), value: args, required: true },
    ]);
  });
  const call = c.unionOf(calls);
  const open = utf8(syntax.open);
  const close = syntax.close ? [c.bytesLiteral([utf8(syntax.close)])] : [];
  let body: GrammarNode;
  if (syntax.list) {
    body = c.arrayOf(call, 1, Math.max(1, syntax.maxCalls));
  } else body = call;
  // After `open` (written by free text in auto mode): the first call, then more calls.
  const afterOpen = (first: GrammarNode[]) => {
    const more = !syntax.list && syntax.maxCalls > 1 ? { next: c.sequenceOf([c.bytesLiteral([utf8(syntax.separator + syntax.open)]), body, ...close], null), max: syntax.maxCalls } : null;
    return c.sequenceOf([...first, body, ...close], more);
  };
  const rest = open.subarray(utf8(syntax.marker).length);
  const root = mode === 'required' ? afterOpen(open.length ? [c.bytesLiteral([open])] : []) : c.sequenceOf([c.textUntil(utf8(syntax.marker)), afterOpen(rest.length ? [c.bytesLiteral([rest])] : [])], null);
  return { root, maxMinBytes: c.maxMinBytes };
}

class Compiler {
  private nextId = 0;
  maxMinBytes = 0;

  constructor(
    private rootSchema: unknown,
    private readonly field: string,
  ) {}

  /** Runs `compile` with `root` as the document local $refs resolve in. */
  withRoot<T>(root: unknown, compile: () => T): T {
    const saved = this.rootSchema;
    this.rootSchema = root;
    try {
      return compile();
    } finally {
      this.rootSchema = saved;
    }
  }

  bytesLiteral(options: Uint8Array[]): GrammarNode {
    return this.make({ kind: 'literal', options, minBytes: Math.min(...options.map((o) => o.length)) });
  }

  objectOf(properties: PropertyNode[]): GrammarNode {
    const minBytes = 2 + properties.reduce((sum, p) => sum + p.key.length + 1 + p.value.minBytes, 0) + Math.max(0, properties.length - 1);
    return this.make({ kind: 'object', properties, freeKeys: null, minBytes });
  }

  arrayOf(items: GrammarNode, minItems: number, maxItems: number): GrammarNode {
    return this.make({ kind: 'array', items, minItems, maxItems, minBytes: 2 + minItems * items.minBytes + Math.max(0, minItems - 1) });
  }

  unionOf(options: GrammarNode[]): GrammarNode {
    return this.union(options);
  }

  sequenceOf(parts: GrammarNode[], repeat: { next: GrammarNode; max: number } | null): GrammarNode {
    // Free text first that may end the reply: the sequence may be empty.
    const endsEarly = parts[0]?.kind === 'text' && parts[0].endable;
    return this.make({ kind: 'sequence', parts, repeat, minBytes: endsEarly ? 0 : parts.reduce((sum, p) => sum + p.minBytes, 0) });
  }

  textUntil(marker: Uint8Array): GrammarNode {
    return this.make({ kind: 'text', marker, endable: true, minBytes: 0 });
  }

  private fail(path: string, message: string): never {
    throw new InvalidArgumentError(this.field, `${this.field} at ${path}: ${message}`);
  }

  private make<T extends Omit<GrammarNode, 'id'>>(node: T): T & { id: number } {
    this.maxMinBytes = Math.max(this.maxMinBytes, node.minBytes);
    return { ...node, id: this.nextId++ };
  }

  node(schema: unknown, path: string, refDepth: number, anyDepth: number): GrammarNode {
    if (schema === true || (isObject(schema) && Object.keys(schema).every((k) => ANNOTATIONS.has(k) && k !== 'additionalProperties'))) return this.any(path, anyDepth);
    if (schema === false) this.fail(path, 'the schema `false` allows no value.');
    if (!isObject(schema)) this.fail(path, `a schema must be an object or a boolean, got ${typeof schema}.`);
    for (const key of Object.keys(schema)) {
      if (!ANNOTATIONS.has(key) && !ENFORCED.has(key)) this.fail(path, `the keyword "${key}" is not supported in constrained output (it restricts values in a way the grammar cannot write); remove it or describe the rule in "description".`);
    }
    if (schema.$ref !== undefined) return this.ref(schema, path, refDepth, anyDepth);
    if (schema.allOf !== undefined) return this.allOf(schema, path, refDepth, anyDepth);
    if (schema.const !== undefined) return this.literal([schema.const as Json], path);
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0) this.fail(path, '"enum" must be a non-empty array.');
      return this.literal(schema.enum as Json[], path);
    }
    const alternatives = schema.anyOf ?? schema.oneOf;
    if (alternatives !== undefined) {
      if (!Array.isArray(alternatives) || alternatives.length === 0) this.fail(path, '"anyOf" / "oneOf" must be a non-empty array of schemas.');
      const { anyOf: _a, oneOf: _o, ...rest } = schema;
      void _a;
      void _o;
      const shared = Object.keys(rest).some((k) => !ANNOTATIONS.has(k));
      return this.union(alternatives.map((alt, i) => this.node(shared ? { ...rest, ...(alt as object) } : alt, `${path}/anyOf/${i}`, refDepth, anyDepth)));
    }
    let types = schema.type === undefined ? inferTypes(schema) : Array.isArray(schema.type) ? schema.type : [schema.type];
    if (schema.nullable === true && !types.includes('null')) types = [...types, 'null'];
    if (types.length === 0) return this.any(path, anyDepth);
    const nodes = types.map((t) => this.typed(t, schema, path, refDepth, anyDepth));
    return nodes.length === 1 ? nodes[0]! : this.union(nodes);
  }

  private typed(type: unknown, s: SchemaObject, path: string, refDepth: number, anyDepth: number): GrammarNode {
    switch (type) {
      case 'null':
        return this.literal([null], path);
      case 'boolean':
        return this.literal([true, false], path);
      case 'string': {
        const minLength = this.count(s.minLength, 'minLength', path, 0);
        const maxLength = this.count(s.maxLength, 'maxLength', path, Infinity);
        if (minLength > maxLength) this.fail(path, `minLength ${minLength} exceeds maxLength ${maxLength}.`);
        return this.make({ kind: 'string', minLength, maxLength, minBytes: 2 + minLength });
      }
      case 'number':
      case 'integer': {
        const minimum = bound(s.minimum, s.exclusiveMinimum, (m) => this.fail(path, m));
        const maximum = bound(s.maximum, s.exclusiveMaximum, (m) => this.fail(path, m));
        if (minimum && maximum && (minimum.value > maximum.value || (minimum.value === maximum.value && (minimum.exclusive || maximum.exclusive)))) this.fail(path, 'the bounds leave no number.');
        const integer = type === 'integer';
        if (integer && minimum && maximum && Math.floor(maximum.value - (maximum.exclusive ? 1e-9 : 0)) < Math.ceil(minimum.value + (minimum.exclusive ? 1e-9 : 0))) this.fail(path, 'the bounds leave no integer.');
        for (const b of [minimum, maximum]) if (b && Math.abs(b.value) >= 10 ** MAX_INTEGER_DIGITS) this.fail(path, `bounds must be below 1e${MAX_INTEGER_DIGITS} in size.`);
        const shortest = shortestNumber(minimum, maximum, integer);
        if (shortest === null) this.fail(path, 'the bounds leave no number with at most 6 decimals.');
        return this.make({ kind: 'number', integer, minimum, maximum, minBytes: shortest.length });
      }
      case 'array': {
        if (Array.isArray(s.items)) this.fail(path, 'tuple "items" (an array of schemas) is not supported; use one schema for every item.');
        const items = this.node(s.items ?? true, `${path}/items`, refDepth, anyDepth + 1);
        const minItems = this.count(s.minItems, 'minItems', path, 0);
        const maxItems = this.count(s.maxItems, 'maxItems', path, Infinity);
        if (minItems > maxItems) this.fail(path, `minItems ${minItems} exceeds maxItems ${maxItems}.`);
        return this.make({ kind: 'array', items, minItems, maxItems, minBytes: 2 + minItems * items.minBytes + Math.max(0, minItems - 1) });
      }
      case 'object': {
        const props = s.properties ?? {};
        if (!isObject(props)) this.fail(path, '"properties" must be an object.');
        const required = s.required ?? [];
        if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) this.fail(path, '"required" must be an array of property names.');
        for (const r of required as string[]) if (!(r in props)) this.fail(path, `"required" names "${r}", which "properties" does not define.`);
        const properties: PropertyNode[] = Object.entries(props).map(([key, value]) => ({
          key: utf8(JSON.stringify(key)),
          value: this.node(value, `${path}/properties/${key}`, refDepth, anyDepth + 1),
          required: (required as string[]).includes(key),
        }));
        // An object with no properties listed takes any keys (the 'json' format, a free-form argument).
        const freeKeys = Object.keys(props).length === 0 && s.additionalProperties !== false ? this.node(isObject(s.additionalProperties) ? s.additionalProperties : true, `${path}/additionalProperties`, refDepth, anyDepth + 1) : null;
        const needed = properties.filter((p) => p.required);
        const minBytes = 2 + needed.reduce((sum, p) => sum + p.key.length + 1 + p.value.minBytes, 0) + Math.max(0, needed.length - 1);
        return this.make({ kind: 'object', properties, freeKeys, minBytes });
      }
      default:
        return this.fail(path, `unknown type ${JSON.stringify(type)}; use string, number, integer, boolean, null, array or object.`);
    }
  }

  /** Any JSON value, nesting at most ANY_DEPTH deep (deeper, only scalars). */
  private any(path: string, depth: number): GrammarNode {
    const scalars = [this.literal([null, true, false], path), this.make({ kind: 'string', minLength: 0, maxLength: Infinity, minBytes: 2 }), this.make({ kind: 'number', integer: false, minimum: null, maximum: null, minBytes: 1 })];
    if (depth >= ANY_DEPTH) return this.union(scalars);
    const inner = this.any(path, depth + 1);
    const object = this.make({ kind: 'object', properties: [], freeKeys: inner, minBytes: 2 });
    const array = this.make({ kind: 'array', items: inner, minItems: 0, maxItems: Infinity, minBytes: 2 });
    return this.union([object, array, ...scalars]);
  }

  private literal(values: Json[], path: string): GrammarNode {
    const options = values.map((v) => {
      if (v === undefined || typeof v === 'function') this.fail(path, '"enum" / "const" values must be JSON values.');
      return utf8(JSON.stringify(v));
    });
    return this.make({ kind: 'literal', options, minBytes: Math.min(...options.map((o) => o.length)) });
  }

  private union(options: GrammarNode[]): GrammarNode {
    const flat = options.flatMap((o) => (o.kind === 'union' ? o.options : [o]));
    return flat.length === 1 ? flat[0]! : this.make({ kind: 'union', options: flat, minBytes: Math.min(...flat.map((o) => o.minBytes)) });
  }

  private ref(s: SchemaObject, path: string, refDepth: number, anyDepth: number): GrammarNode {
    const ref = s.$ref;
    if (typeof ref !== 'string' || !ref.startsWith('#')) this.fail(path, `only local "$ref"s ("#/…") are supported, got ${JSON.stringify(ref)}.`);
    const target = this.resolve(ref, path);
    if (refDepth >= MAX_REF_DEPTH) this.fail(path, `"$ref" ${JSON.stringify(ref)} recurses more than ${MAX_REF_DEPTH} levels; constrained output needs a bounded schema.`);
    const { $ref: _r, ...rest } = s;
    void _r;
    // Keywords beside a $ref add to its schema (as allOf would).
    return this.node(Object.keys(rest).some((k) => !ANNOTATIONS.has(k)) ? { allOf: [target, rest] } : target, ref, refDepth + 1, anyDepth);
  }

  private resolve(ref: string, path: string): unknown {
    if (!ref.startsWith('#')) this.fail(path, `only local "$ref"s ("#/…") are supported, got ${JSON.stringify(ref)}.`);
    let target: unknown = this.rootSchema;
    for (const part of ref.slice(1).split('/').filter((p) => p !== '')) {
      const key = decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~');
      target = isObject(target) ? target[key] : undefined;
      if (target === undefined) this.fail(path, `"$ref" ${JSON.stringify(ref)} points nowhere.`);
    }
    return target;
  }

  private allOf(s: SchemaObject, path: string, refDepth: number, anyDepth: number): GrammarNode {
    const parts = s.allOf;
    if (!Array.isArray(parts) || parts.length === 0) this.fail(path, '"allOf" must be a non-empty array of schemas.');
    const { allOf: _a, ...rest } = s;
    void _a;
    // Merged where the parts do not overlap (the common use: a base object and an extension).
    const merged: SchemaObject = { ...rest };
    for (let part of parts) {
      if (!isObject(part)) this.fail(path, '"allOf" entries must be schema objects.');
      // A referenced part is merged as the schema it points to.
      for (let hops = 0; typeof part.$ref === 'string' && hops < MAX_REF_DEPTH; hops++) {
        const { $ref, ...beside } = part;
        const target = this.resolve($ref as string, path);
        if (!isObject(target)) this.fail(path, `"allOf" refers to ${JSON.stringify($ref)}, which is not a schema object.`);
        part = { ...target, ...beside };
      }
      for (const [k, v] of Object.entries(part)) {
        if (k === 'properties' && isObject(merged.properties) && isObject(v)) merged.properties = { ...merged.properties, ...v };
        else if (k === 'required' && Array.isArray(merged.required) && Array.isArray(v)) merged.required = [...merged.required, ...v];
        else if (k in merged && JSON.stringify(merged[k]) !== JSON.stringify(v) && !ANNOTATIONS.has(k)) this.fail(path, `"allOf" parts disagree on "${k}"; merge them into one schema.`);
        else merged[k] = v;
      }
    }
    return this.node(merged, path, refDepth, anyDepth);
  }

  private count(value: unknown, name: string, path: string, fallback: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) this.fail(path, `"${name}" must be a non-negative integer.`);
    return value;
  }
}

function bound(inclusive: unknown, exclusive: unknown, fail: (message: string) => never): Bound | null {
  for (const v of [inclusive, exclusive]) if (v !== undefined && typeof v !== 'boolean' && (typeof v !== 'number' || !Number.isFinite(v))) fail('numeric bounds must be finite numbers.');
  // Draft-04 style: exclusiveMinimum: true beside minimum.
  if (typeof exclusive === 'boolean') return typeof inclusive === 'number' ? { value: inclusive, exclusive } : null;
  if (typeof exclusive === 'number' && typeof inclusive === 'number') return exclusive >= inclusive ? { value: exclusive, exclusive: true } : { value: inclusive, exclusive: false };
  if (typeof exclusive === 'number') return { value: exclusive, exclusive: true };
  return typeof inclusive === 'number' ? { value: inclusive, exclusive: false } : null;
}

/** Whether `value` lies within the bounds. */
export function withinBounds(value: number, minimum: Bound | null, maximum: Bound | null): boolean {
  if (minimum && (minimum.exclusive ? value <= minimum.value : value < minimum.value)) return false;
  if (maximum && (maximum.exclusive ? value >= maximum.value : value > maximum.value)) return false;
  return true;
}

/** The shortest number text within the bounds (an integer where one fits, else the fewest decimals), or null. */
function shortestNumber(minimum: Bound | null, maximum: Bound | null, integer: boolean): string | null {
  const lo = minimum?.value ?? -Infinity;
  const hi = maximum?.value ?? Infinity;
  const candidates: number[] = [];
  if (withinBounds(0, minimum, maximum)) return '0';
  // The integers nearest zero inside the range.
  for (const v of [Math.ceil(lo), Math.ceil(lo) + 1, Math.floor(hi), Math.floor(hi) - 1]) if (Number.isFinite(v) && withinBounds(v, minimum, maximum)) candidates.push(v);
  if (candidates.length > 0) return candidates.map(String).sort((a, b) => a.length - b.length)[0]!;
  if (integer) return null;
  for (let decimals = 1; decimals <= 6; decimals++) {
    const step = 10 ** decimals;
    for (const v of [Math.ceil(lo * step) / step, Math.ceil(lo * step + 1) / step, Math.floor(hi * step) / step]) {
      if (withinBounds(v, minimum, maximum)) return v.toFixed(decimals);
    }
  }
  return null;
}

/** The types a schema without "type" implies by its keywords (none: any value). */
function inferTypes(s: SchemaObject): string[] {
  if ('properties' in s || 'required' in s) return ['object'];
  if ('items' in s || 'minItems' in s || 'maxItems' in s) return ['array'];
  if ('minLength' in s || 'maxLength' in s) return ['string'];
  if ('minimum' in s || 'maximum' in s || 'exclusiveMinimum' in s || 'exclusiveMaximum' in s) return ['number'];
  return [];
}

function isObject(value: unknown): value is SchemaObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
