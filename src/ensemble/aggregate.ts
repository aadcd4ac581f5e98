/**
 * Building the ensemble distribution at an ensemble point: UniTE (top-k union with fill-in),
 * GaC (full-vocabulary union), and sharpening (heuristic prefix gathering or geometric mean).
 * Pure functions over logits rows: no model runs here.
 * @module
 */
import { expNonPositive, logSumExpFrom, maxOf, topK, type TopK } from '../member/distribution.js';
import { isKept, type KeptSet } from '../member/truncation.js';
import type { SharpeningOptions } from './options.js';
import { isBareSpace, type Vocabulary } from './vocabulary.js';

/** What UniTE needs of one model at the ensemble point: its top-k, not its whole row. */
export interface UnionMember {
  /** The model's vocabulary. */
  vocab: Vocabulary;
  /** Its k best ids at the aligned position, best first (ties: lower id first), with their logits. */
  top: TopK;
  /** Normalized weight (weights sum to 1). */
  weight: number;
  /** Text just before the position, used to tokenize union strings in context. */
  context: string;
  /**
   * At the response start of a model whose response encoding adds a sentencepiece dummy-prefix
   * space (`▁Nora` where the response is "Nora"): that space is not part of the response, so its
   * strings count without it and a bare dummy space counts as nothing.
   */
  dummySpace?: boolean;
}

/** One model's view at the ensemble point, with its whole next-token row. */
export interface ModelView extends Omit<UnionMember, 'top'> {
  /** Its next-token logits at the aligned position (a view; never modified). */
  row: Float32Array;
}

/** The string a model's token stands for in the union (see {@link ModelView.dummySpace}); '' for none. */
function viewKey(m: Pick<UnionMember, 'vocab' | 'dummySpace'>, id: number): string {
  const key = m.vocab.key(id);
  return m.dummySpace && key.charCodeAt(0) === 0x20 ? key.slice(1) : key;
}

/** UniTE fill-in: the model's first sub-token for a union string, under its view. */
function fillIn(m: Pick<UnionMember, 'vocab' | 'dummySpace' | 'context'>, key: string): number | null {
  if (!m.dummySpace) return m.vocab.firstSubToken(key, m.context);
  // The model writes the string with its dummy space in front; a string it only has without
  // the space (digits, punctuation) is looked up as it is.
  return m.vocab.idOf(` ${key}`) ?? m.vocab.firstSubToken(key, m.context);
}

/** The averaged distribution over a union of token strings. */
export interface EnsembleDistribution {
  /** Union entries (byte keys), drafter's preferences first. */
  keys: string[];
  /** Each model's probability of each entry (0 where the model cannot express it). */
  perModel: Float64Array[];
  /** Weighted arithmetic mean of `perModel`. */
  average: Float64Array;
}

/** A distribution after sharpening, with the decision. */
export interface EnsembleDecision extends EnsembleDistribution {
  /** Scores the winner is the argmax of (equal to `average` when not sharpened). */
  scores: Float64Array;
  /** Whether sharpening changed the scores. */
  sharpened: boolean;
  /** Index of the winning entry. */
  winner: number;
  /** The bare space that scored best in a sharpened decision and gave way to the best other entry (see {@link decide}); null otherwise. */
  bareSpaceGaveWay: string | null;
}

/**
 * UniTE, planned from the models' top-k alone: the union's strings, each model's logits for the
 * strings its top-k holds, and the fill-in ids whose logits are still needed (read them from
 * the rows, then {@link finishUnite}). Which id fills which string does not depend on logits.
 */
export interface UnitePlan {
  /** Union entries (byte keys), drafter's preferences first. */
  keys: string[];
  /** Per model: logits of the entries its top-k holds (-Infinity elsewhere). */
  exact: Float64Array[];
  /** Per model: the id of each entry its top-k holds (-1 elsewhere). */
  exactIds: Int32Array[];
  /** Per model: the entries to fill in and the id whose logit fills each. */
  fills: Array<Array<{ entry: number; id: number }>>;
}

/**
 * UniTE: the union of every model's top-k strings. A model whose top-k lacks a string
 * contributes the logit of its first sub-token for it; two strings that map to the same
 * sub-token count once (the exact match wins, then the first in union order). Each model's
 * softmax is taken over its entries of the union only.
 */
export function planUnite(models: readonly UnionMember[], widths: readonly number[]): UnitePlan {
  const index = new Map<string, number>();
  const keys: string[] = [];
  models.forEach((m) => {
    for (const id of m.top.ids) {
      const key = viewKey(m, id);
      if (key !== '' && !index.has(key)) {
        index.set(key, keys.length);
        keys.push(key);
      }
    }
  });
  const n = keys.length;
  const exact: Float64Array[] = [];
  const exactIds: Int32Array[] = [];
  const fills = models.map((m, mi) => {
    const logits = new Float64Array(n).fill(-Infinity);
    const ids = new Int32Array(n).fill(-1);
    const used = new Set<number>();
    // Exact matches first, so a fill-in never takes a token away from its own string.
    m.top.ids.forEach((id, i) => {
      const e = index.get(viewKey(m, id));
      if (e !== undefined && ids[e] === -1) {
        logits[e] = m.top.logits[i]!;
        ids[e] = id;
        used.add(id);
      }
    });
    exact.push(logits);
    exactIds.push(ids);
    const fill: Array<{ entry: number; id: number }> = [];
    for (let e = 0; e < n; e++) {
      if (logits[e] !== -Infinity) continue;
      const id = fillIn(m, keys[e]!);
      if (id === null || used.has(id) || id >= widths[mi]!) continue;
      used.add(id);
      fill.push({ entry: e, id });
    }
    return fill;
  });
  return { keys, exact, exactIds, fills };
}

/**
 * Completes a {@link UnitePlan} with the fill-in logits (per model, in `fills` order). When
 * sampling, `kept` holds each model's kept set: an entry whose token is cut counts as nothing
 * and the rest are tempered before each model's softmax over the union.
 */
export function finishUnite(plan: UnitePlan, fillLogits: readonly ArrayLike<number>[], models: readonly Pick<UnionMember, 'weight'>[], kept?: readonly KeptSet[]): EnsembleDistribution {
  const perModel = plan.exact.map((exact, mi) => {
    const logits = Float64Array.from(exact);
    plan.fills[mi]!.forEach((f, i) => (logits[f.entry] = fillLogits[mi]![i]!));
    const set = kept?.[mi];
    if (set) {
      const ids = Int32Array.from(plan.exactIds[mi]!);
      plan.fills[mi]!.forEach((f) => (ids[f.entry] = f.id));
      for (let e = 0; e < logits.length; e++) {
        if (ids[e]! < 0 || !isKept(set, ids[e]!, logits[e]!)) logits[e] = -Infinity;
        else logits[e] = logits[e]! / set.temperature;
      }
    }
    return softmax(logits);
  });
  return { keys: plan.keys, perModel, average: weightedMean(perModel, models) };
}

/** {@link planUnite} and {@link finishUnite} over whole rows. */
export function uniteDistribution(models: readonly ModelView[], k: number): EnsembleDistribution {
  const members = models.map((m) => ({ ...m, top: topK(m.row, k) }));
  const plan = planUnite(members, models.map((m) => m.row.length));
  return finishUnite(plan, plan.fills.map((fill, mi) => fill.map((f) => models[mi]!.row[f.id]!)), models);
}

function softmax(logits: Float64Array): Float64Array {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  const out = new Float64Array(logits.length);
  if (max === -Infinity) return out;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i] === -Infinity ? 0 : Math.exp(logits[i]! - max);
    out[i] = v;
    sum += v;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

function weightedMean(perModel: Float64Array[], models: readonly Pick<UnionMember, 'weight'>[]): Float64Array {
  const n = perModel[0]?.length ?? 0;
  const avg = new Float64Array(n);
  perModel.forEach((p, mi) => {
    const w = models[mi]!.weight;
    for (let e = 0; e < n; e++) avg[e]! += w * p[e]!;
  });
  return avg;
}

/**
 * The GaC union vocabulary of a model set: every model's ids mapped to shared byte-string
 * entries. Built once per model set and reused for every ensemble point.
 */
export class GacUnion {
  /** Entry keys. */
  readonly keys: string[] = [];
  /** Per model: id → entry. */
  readonly maps: Int32Array[];
  private scratch: Float64Array[];
  private readonly index = new Map<string, number>();
  /** Per model, built on first use: id → entry of its string without a leading dummy space. */
  private readonly withoutDummySpace: Array<Int32Array | null>;

  constructor(private readonly vocabs: readonly Vocabulary[]) {
    const index = this.index;
    this.maps = vocabs.map((v) => {
      const map = new Int32Array(v.size).fill(-1);
      for (let id = 0; id < v.size; id++) {
        let key: string;
        try {
          key = v.key(id);
        } catch {
          continue;
        }
        let e = index.get(key);
        if (e === undefined) {
          e = this.keys.length;
          index.set(key, e);
          this.keys.push(key);
        }
        // Two ids with the same bytes (a byte-fallback twin) share the entry: their mass adds up.
        map[id] = e;
      }
      return map;
    });
    this.scratch = vocabs.map(() => new Float64Array(this.keys.length));
    this.withoutDummySpace = vocabs.map(() => null);
  }

  /** The id → entry map of model `mi` under its view (see {@link ModelView.dummySpace}). */
  private mapFor(mi: number, view: ModelView): Int32Array {
    if (!view.dummySpace) return this.maps[mi]!;
    let map = this.withoutDummySpace[mi];
    if (!map) {
      const plain = this.maps[mi]!;
      map = Int32Array.from(plain);
      for (let id = 0; id < map.length; id++) {
        if (plain[id]! < 0) continue;
        const key = this.keys[plain[id]!]!;
        if (key.charCodeAt(0) !== 0x20) continue;
        const bare = key.slice(1);
        if (bare === '') {
          map[id] = -1;
          continue;
        }
        let e = this.index.get(bare);
        if (e === undefined) {
          e = this.keys.length;
          this.index.set(bare, e);
          this.keys.push(bare);
        }
        map[id] = e;
      }
      this.withoutDummySpace[mi] = map;
      if (this.scratch[0]!.length < this.keys.length) this.scratch = this.vocabs.map(() => new Float64Array(this.keys.length));
    }
    return map;
  }

  /**
   * GaC: every model's full softmax mapped into the union and averaged. Entries below 1e-7 of
   * mass in the average are dropped from the returned (sparse) distribution, except each
   * model's top-k, which sharpening may need.
   */
  distribution(models: readonly ModelView[], k: number): EnsembleDistribution {
    const touched = new Set<number>();
    // Maps first: building a dummy-space map may add entries and regrow the scratch rows.
    const maps = models.map((m, mi) => this.mapFor(mi, m));
    models.forEach((m, mi) => {
      const map = maps[mi]!;
      const acc = this.scratch[mi]!;
      const max = maxOf(m.row);
      const lse = logSumExpFrom(m.row, max);
      const floor = max - 32;
      for (let id = 0; id < map.length && id < m.row.length; id++) {
        const l = m.row[id]!;
        if (l <= floor) continue;
        const e = map[id]!;
        if (e < 0) continue;
        acc[e]! += expNonPositive(l - lse);
        touched.add(e);
      }
      for (const id of topK(m.row, k).ids) if (map[id]! >= 0) touched.add(map[id]!);
    });
    const entries: number[] = [];
    for (const e of touched) {
      let avg = 0;
      models.forEach((m, mi) => (avg += m.weight * this.scratch[mi]![e]!));
      if (avg > 1e-7 || models.some((m, mi) => this.scratch[mi]![e]! > 0.01)) entries.push(e);
    }
    entries.sort((a, b) => a - b);
    const perModel = models.map((_, mi) => Float64Array.from(entries, (e) => this.scratch[mi]![e]!));
    for (const acc of this.scratch) for (const e of touched) acc[e] = 0;
    const keys = entries.map((e) => this.keys[e]!);
    return { keys, perModel, average: weightedMean(perModel, models) };
  }
}

/**
 * A row tempered and cut for sampling (GaC reads whole rows): kept logits divided by the
 * temperature, the rest -Infinity. A copy; the row is not modified.
 */
export function truncatedRow(row: Float32Array, kept: KeptSet): Float32Array {
  const out = new Float32Array(row.length);
  const invT = 1 / kept.temperature;
  for (let id = 0; id < row.length; id++) out[id] = isKept(kept, id, row[id]!) ? row[id]! * invT : -Infinity;
  return out;
}

/**
 * Applies sharpening and picks the winner.
 * - `heuristic`: when the top averaged probability is below `below`, each candidate (a key
 *   in the drafter's top-k with average > λ, not a bare space) gains the average mass of every
 *   other entry that starts with it, so " Sof", " Sofi", " Sofia" gather on the shortest
 *   well-supported prefix.
 * - `geometric`: when below `below`, scores are the weighted geometric mean of the models'
 *   probabilities.
 * Ties go to the earlier entry (the drafter's preference). In a sharpened decision a bare space
 * cannot win: the best other entry does.
 */
export function decide(dist: EnsembleDistribution, drafterTopKeys: ReadonlySet<string>, weights: readonly number[], sharpening: Required<SharpeningOptions>): EnsembleDecision {
  const { keys, average } = dist;
  let top = 0;
  for (const p of average) if (p > top) top = p;
  let scores = average;
  let sharpened = false;
  if (top < sharpening.below && sharpening.method !== 'none' && keys.length > 1) {
    if (sharpening.method === 'heuristic') {
      scores = Float64Array.from(average);
      for (let c = 0; c < keys.length; c++) {
        const key = keys[c]!;
        if (!drafterTopKeys.has(key) || !(average[c]! > sharpening.lambda) || isBareSpace(key)) continue;
        for (let e = 0; e < keys.length; e++) {
          if (e !== c && keys[e]!.length > key.length && keys[e]!.startsWith(key)) scores[c]! += average[e]!;
        }
      }
      sharpened = true;
    } else {
      scores = new Float64Array(keys.length);
      for (let e = 0; e < keys.length; e++) {
        let logG = 0;
        dist.perModel.forEach((p, mi) => (logG += weights[mi]! * Math.log(p[e]!)));
        scores[e] = Math.exp(logG);
      }
      sharpened = true;
    }
  }
  let winner = 0;
  for (let e = 1; e < scores.length; e++) if (scores[e]! > scores[winner]!) winner = e;
  // When the distribution is smooth enough to be sharpened, a bare space is not a candidate,
  // as in the sharpening rule: its mass stands for whatever word follows, and committing the
  // space alone splits a verifier's " ." or " Nora" so that the next token lands inside it,
  // where no gate looks. The best other entry wins. (A confident space, before a number, stays.)
  let bareSpaceGaveWay: string | null = null;
  if (sharpened && isBareSpace(keys[winner]!)) {
    let best = -1;
    for (let e = 0; e < keys.length; e++) if (!isBareSpace(keys[e]!) && (best < 0 || scores[e]! > scores[best]!)) best = e;
    if (best >= 0) {
      bareSpaceGaveWay = keys[winner]!;
      winner = best;
    }
  }
  return { ...dist, scores, sharpened, winner, bareSpaceGaveWay };
}

/** Keys of a row's top-k under a vocabulary (`top`: the row itself, or its top-k ids). */
export function topKeys(vocab: Vocabulary, top: Float32Array | Int32Array, k: number): Set<string> {
  const ids = top instanceof Int32Array ? top.subarray(0, k) : topK(top, k).ids;
  return new Set(Array.from(ids, (id) => vocab.key(id)));
}
