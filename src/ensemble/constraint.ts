/**
 * The constraint seam: what the response may be, as bytes (members tokenize differently, so a
 * constraint speaks about text, never ids). A generation with a constraint masks every row it
 * uses — the drafter's (what it drafts), the verifiers' (the gates, the union entries and the
 * greedy choice) and, when sampling, before temperature and cuts — through {@link constrainRow},
 * the one place a constraint is consulted. Without one, nothing here runs.
 * @module
 */
import { InvalidArgumentError } from '../errors.js';
import { logSumExp, topK as topKOf, type TopK } from '../member/distribution.js';
import { RowScore, type RowAnswer, type RowQuery, type ScorePayload } from '../member/scores.js';
import { truncateTop } from '../member/truncation.js';
import { bytesEqual, utf8 } from '../text/bytes.js';
import type { SequenceModel } from '../member/member.js';
import { TokenTable } from './tokenTable.js';
import type { Vocabulary } from './vocabulary.js';

/** What constrainRow needs of a member. */
export interface ConstrainedMember {
  lm: SequenceModel;
  vocab: Vocabulary;
  /** Whether its response encoding starts with a dummy-prefix space. */
  addsSpace: boolean;
}

/**
 * Restricts what a generation may write next, given what it has written (the response's UTF-8
 * bytes, without the prompt). Both methods must be pure: the engine asks them many times, for
 * tokens of several tokenizers, in any order.
 *
 * @example
 * ```ts
 * // Only "yes" or "no" (see AllowedStrings in langchain-safe-ensemble/research):
 * const yesNo: TextConstraint = {
 *   allows: (written, next) => ['yes', 'no'].some((s) => Buffer.from(s).subarray(0, written.length + next.length).equals(Buffer.concat([written, next]))),
 *   allowsEnd: (written) => ['yes', 'no'].includes(Buffer.from(written).toString()),
 * };
 * const result = await ensemble.generate('Is water wet? ', { constraint: yesNo });
 * ```
 */
export interface TextConstraint {
  /**
   * Whether `next` (a token's bytes) may follow `written`: the response stays a prefix of some
   * allowed text. `tokensLeft`: tokens the response may still take, this one included (a
   * constraint may use it to close its text in time; Infinity when unbounded).
   */
  allows(written: Uint8Array, next: Uint8Array, tokensLeft?: number): boolean;
  /** Whether the response may end after `written` (end-of-sequence is allowed there). */
  allowsEnd(written: Uint8Array): boolean;
  /**
   * Optional, for speed: which of `table`'s tokens may follow `written` (1: allowed; ids with
   * empty bytes are never asked about), as `allows` would answer for each — or fewer of them
   * where `tokensLeft` is short (a grammar then keeps the tokens that close its text soonest).
   * The returned array may be shared: it is not written to.
   */
  allowedTokens?(written: Uint8Array, table: TokenTable, tokensLeft?: number): Uint8Array;
}

/** A constraint whose allowed responses are a fixed set of strings (each in full). */
export class AllowedStrings implements TextConstraint {
  private readonly strings: Uint8Array[];

  constructor(strings: readonly string[]) {
    if (!Array.isArray(strings) || strings.length === 0 || strings.some((s) => typeof s !== 'string')) {
      throw new InvalidArgumentError('constraint', 'AllowedStrings needs a non-empty array of strings.');
    }
    this.strings = strings.map(utf8);
  }

  allows(written: Uint8Array, next: Uint8Array): boolean {
    const n = written.length + next.length;
    return this.strings.some((s) => s.length >= n && bytesEqual(s.subarray(0, written.length), written) && bytesEqual(s.subarray(written.length, n), next));
  }

  allowsEnd(written: Uint8Array): boolean {
    return this.strings.some((s) => bytesEqual(s, written));
  }
}

/** Checks a caller's constraint object (the option `constraint`). */
export function checkConstraint(value: unknown): TextConstraint | undefined {
  if (value === undefined || value === null) return undefined;
  const c = value as Partial<TextConstraint>;
  if (typeof c !== 'object' || typeof c.allows !== 'function' || typeof c.allowsEnd !== 'function') {
    throw new InvalidArgumentError('constraint', 'constraint: must be an object with allows(written, next) and allowsEnd(written) methods (a TextConstraint).');
  }
  return c as TextConstraint;
}

/**
 * Most allowed tokens a served member is asked about when none of its returned entries is
 * allowed (the first ones by id beyond that: a served model is known only through what it returns).
 */
const MOST_ASKED = 256;

/** The logit a masked-out token gets: finite (so the finiteness checks still hold), far below any real one. */
const DISALLOWED_LOGIT = -(2 ** 100);

/**
 * `row` (member `m`'s row for the token that starts after `written`) with every token the
 * constraint does not allow there masked to {@link DISALLOWED_LOGIT}: end-of-sequence only where
 * the response may end, other special tokens never. `atStart`: the row predicts the response's
 * first token, whose dummy-prefix space (where `m` writes one) is not part of the response.
 *
 * Whole rows are read and masked (the normalizer then covers the allowed tokens only); a member
 * known only through its top-k (a served model) is masked there, its normalizer taken over the
 * allowed entries it returned.
 */
export async function constrainRow(row: RowScore, m: ConstrainedMember, written: Uint8Array, atStart: boolean, constraint: TextConstraint, tokensLeft = Infinity): Promise<RowScore> {
  const tok = m.lm.tokenizer;
  const canEnd = constraint.allowsEnd(written);
  const table = TokenTable.of(tok, atStart && m.addsSpace);
  // One mask per row where the constraint can give one (a grammar walks its token trie once per state).
  const mask = constraint.allowedTokens ? constraint.allowedTokens(written, table, tokensLeft) : null;
  const allowed = (id: number): boolean => {
    if (id < 0 || id >= tok.producibleIds) return false;
    if (m.vocab.isEos(id)) return canEnd;
    const bytes = table.bytesOf(id);
    if (bytes.length === 0) return false;
    return mask ? mask[id] === 1 : constraint.allows(written, bytes, tokensLeft);
  };
  const k = row.top().ids.length;
  let payload: ScorePayload;
  let reader: (query: RowQuery) => Promise<RowAnswer>;
  if (m.lm.wholeRows) {
    const full = await row.row();
    const masked = full.slice();
    if (mask) {
      // Typed-array passes: the mask says every token but end-of-sequence (special: no bytes).
      const n = Math.min(masked.length, mask.length);
      for (let id = 0; id < n; id++) if (mask[id] !== 1) masked[id] = DISALLOWED_LOGIT;
      masked.fill(DISALLOWED_LOGIT, n);
      for (const eos of tok.eosTokenIds) if (eos < masked.length && canEnd) masked[eos] = full[eos]!;
    } else for (let id = 0; id < masked.length; id++) if (!allowed(id)) masked[id] = DISALLOWED_LOGIT;
    const best = topKOf(masked, k);
    const allowedCount = best.logits.findIndex((l) => l === DISALLOWED_LOGIT);
    // Fewer allowed tokens than k: the row lists just those (a disallowed entry is never a candidate).
    payload = allowedCount < 0 ? payloadOf(row, best, masked, false) : payloadOf(row, { ids: best.ids.subarray(0, allowedCount), logits: best.logits.subarray(0, allowedCount) }, masked, true);
    reader = () => Promise.reject(new Error('internal: a masked row is held whole'));
  } else {
    let top = row.top();
    let keep = Array.from(top.ids.keys()).filter((e) => allowed(top.ids[e]!));
    if (keep.length === 0) {
      // No allowed token among the entries the server returned: ask it for the allowed ones
      // (every returned entry outranks them, so the best of these is the best allowed token).
      const ids: number[] = [];
      for (let id = 0; id < tok.producibleIds && ids.length < MOST_ASKED; id++) if (allowed(id)) ids.push(id);
      const logits = await row.logitsOf(ids);
      top = topKOf(logits, Math.min(k, ids.length));
      top = { ids: Int32Array.from(top.ids, (e) => ids[e]!), logits: top.logits };
      keep = Array.from(top.ids.keys());
    }
    const kept: TopK = { ids: Int32Array.from(keep, (e) => top.ids[e]!), logits: Float32Array.from(keep, (e) => top.logits[e]!) };
    if (kept.ids.length === 0) throw deadEnd(m, written);
    payload = payloadOf(row, kept, null, true);
    const normalizer = kept.logits.length > 0 ? logSumExp(kept.logits) : DISALLOWED_LOGIT;
    reader = async (query) => {
      const ids = query.ids ?? [];
      const logits = ids.length ? await row.logitsOf(ids) : new Float32Array(0);
      ids.forEach((id, i) => (logits[i] = allowed(id) ? logits[i]! : DISALLOWED_LOGIT));
      return { logits, logNormalizer: normalizer, row: null, ...(query.truncation ? { truncated: truncateTop(kept, query.truncation, query.uniform) } : {}) };
    };
  }
  if (payload.k === 0) throw deadEnd(m, written);
  return new RowScore(payload, 0, reader, row.askedId);
}

function deadEnd(m: ConstrainedMember, written: Uint8Array): InvalidArgumentError {
  const text = new TextDecoder().decode(written).slice(-60);
  return new InvalidArgumentError('constraint', `the constraint allows no token of ${m.lm.name} after ${JSON.stringify(text)} and no end there: it leaves the response nowhere to go. Check the constraint's allows()/allowsEnd().`);
}

/** A one-row payload at `row`'s position with the given top entries and (masked) whole row. */
function payloadOf(row: RowScore, top: TopK, data: Float32Array | null, exhaustive: boolean): ScorePayload {
  const k = top.ids.length;
  const asked = row.askedId >= 0 && data ? data[row.askedId]! : NaN;
  return {
    first: row.position,
    rows: 1,
    width: row.width,
    k,
    topIds: Int32Array.from(top.ids),
    topLogits: Float32Array.from(top.logits),
    asked: Float32Array.of(asked),
    logNormalizers: Float64Array.of(NaN),
    data,
    pass: -1,
    exhaustive,
  };
}
