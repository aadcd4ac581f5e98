/**
 * The automaton's configurations and frames (see automaton.ts), and the facts about them that
 * both the stepping and the measures (measures.ts) read.
 * @module
 */
import { boundedExtension, prefixValue, type NumberPrefix } from './numbers.js';
import { withinBounds, type GrammarNode } from './schema.js';

export type ObjectNode = Extract<GrammarNode, { kind: 'object' }>;
export type ArrayNode = Extract<GrammarNode, { kind: 'array' }>;
export type StringNode = Extract<GrammarNode, { kind: 'string' }>;
export type NumberNode = Extract<GrammarNode, { kind: 'number' }>;
export type SequenceNode = Extract<GrammarNode, { kind: 'sequence' }>;
export type TextNode = Extract<GrammarNode, { kind: 'text' }>;

/** What follows a completed value. */
export type Frame =
  | { t: 'done' }
  | { t: 'objAfter'; node: ObjectNode; next: number; up: Frame; memo?: Memo }
  | { t: 'keyColon'; node: ObjectNode; prop: number; up: Frame; memo?: Memo }
  | { t: 'arrAfter'; node: ArrayNode; count: number; up: Frame; memo?: Memo }
  /** Inside a sequence: part `next` comes next (all written: the sequence is complete). */
  | { t: 'seq'; node: SequenceNode; next: number; up: Frame; memo?: Memo }
  /** A complete sequence repeated `count` times: the end of it, or its `repeat.next` again. */
  | { t: 'rep'; node: SequenceNode; count: number; up: Frame; memo?: Memo };

export interface Memo {
  key: string;
  rest: number;
}

/** One configuration of the automaton. */
export type Config =
  | { t: 'value'; node: GrammarNode; up: Frame; ws: number }
  | { t: 'after'; up: Frame; ws: number }
  | { t: 'objOpen'; node: ObjectNode; up: Frame; ws: number; comma: boolean; next: number }
  | { t: 'key'; node: ObjectNode; props: number[]; pos: number; up: Frame }
  | { t: 'str'; node: StringNode; up: Frame; len: number; pending: number; escape: number }
  | { t: 'num'; node: NumberNode; up: Frame; p: NumberPrefix; phase: 'sign' | 'int' | 'dot' | 'frac' | 'e' | 'esign' | 'exp'; exp: number }
  | { t: 'lit'; options: Uint8Array[]; pos: number; up: Frame; id: number }
  | { t: 'free'; node: TextNode; matched: number; up: Frame };

export const DONE: Frame = { t: 'done' };
/** Whether a property at or after `from` is required (the object cannot close yet). */
export function requiredFrom(node: ObjectNode, from: number): boolean {
  for (let i = Math.max(0, from); i < node.properties.length; i++) if (node.properties[i]!.required) return true;
  return false;
}

export const bounded = (node: NumberNode) => node.minimum !== null || node.maximum !== null;

export function numberFeasible(c: Extract<Config, { t: 'num' }>): boolean {
  return !bounded(c.node) || boundedExtension(c.p, c.node.minimum, c.node.maximum, c.node.integer) < Infinity;
}

/** Whether the number written so far is a complete one the node allows. */
export function numberComplete(c: Extract<Config, { t: 'num' }>): boolean {
  if (c.phase === 'int' || c.phase === 'frac' || c.phase === 'exp') return !bounded(c.node) || withinBounds(prefixValue(c.p), c.node.minimum, c.node.maximum);
  return false;
}
