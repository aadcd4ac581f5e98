/**
 * The scorer: the verifiers' side of SAFE. Re-tokenizes the candidate text in each verifier's
 * own vocabulary (steps 2–3 of the paper), brings each verifier's cache to it and scores only the
 * rows that are read, all verifiers at once; aligns drafter positions to verifier tokens; and
 * answers look-ahead questions: a verifier's probability of a whole continuation string.
 * @module
 */
import type { RowScore, Scores } from '../member/scores.js';
import { fromUtf8 } from '../text/bytes.js';
import { encodeResponse, type ResponseTokenization } from '../text/continuation.js';
import { constrainRow } from './constraint.js';
import { stableAlignment } from './gates.js';
import { commonPrefix, firstTokenAtOrAfter, Joined, scorePass, tokensLeftAt, type GenerationState, type Member } from './sequence.js';

/** A verifier's probability of a continuation string, by the chain rule over its own tokens. */
export interface ContinuationScore {
  /** The product of the tokens' probabilities. */
  probability: number;
  /** Its logarithm (the sum of the tokens' log-probabilities). */
  logProbability: number;
  /** The verifier's tokens of the continuation. */
  ids: number[];
}

/** The look-ahead seam: what the decider may ask of a verifier beyond the next token's row. */
export interface LookAhead {
  /**
   * Verifier `verifier`'s probability that the response continues with `continuation` after
   * its first `written` bytes (the response as the verifiers see it), by the chain rule over the
   * verifier's tokenization of written ++ continuation, scored through its cache in one pass.
   * Null when that tokenization has no token boundary where `written` ends.
   */
  continuationProbability(verifier: number, written: Uint8Array, continuation: string): Promise<ContinuationScore | null>;
}

export class VerifierScorer implements LookAhead {
  /** The verifiers' response tokenizations, in verifier order (for the stability gate). */
  readonly tokenizations: ResponseTokenization[];

  constructor(private readonly state: GenerationState) {
    this.tokenizations = state.verifiers.map((v) => v.tokens!);
  }

  /** Re-tokenizes the response (`response`: the text without the drafter's lead) for every verifier; per verifier, the first token index that changed. */
  retokenize(response: Uint8Array): number[] {
    const t0 = performance.now();
    const { verifiedBase, options } = this.state;
    const changed = this.state.verifiers.map((v) => v.tokens!.update(response, verifiedBase, options.recomputeCaches));
    this.state.stats.time.tokenizingMs += performance.now() - t0;
    return changed;
  }

  /**
   * Runs `score` for every verifier at once (each model's session runs on its own) and waits
   * for all of them, also when one fails: a pass still running must not outlive the generation
   * that holds the models. Null when aborted; the first failure is rethrown.
   */
  async allVerifiers<T>(score: (v: Member, vi: number) => Promise<T | null>): Promise<T[] | null> {
    const t0 = performance.now();
    const settled = await Promise.allSettled(this.state.verifiers.map((v, vi) => score(v, vi)));
    this.state.stats.time.verifyingMs += performance.now() - t0;
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const values = settled.map((r) => (r as PromiseFulfilledResult<T | null>).value);
    return values.some((v) => v === null) ? null : (values as T[]);
  }

  /**
   * Brings a verifier's cache to prompt ++ its response tokens and returns the rows that
   * predict each position from `need` on (`rowAt(q)` predicts the token at sequence position q).
   * Only the uncached suffix is fed; when the cache already ends at `need` with the last row of
   * the previous pass predicting it, that row is reused instead of cropping and re-feeding.
   */
  async verifierRows(v: Member, firstChanged: number, need: number, rows: 'all' | 'last'): Promise<((q: number) => RowScore) | null> {
    const P = v.prompt.ids.length;
    const seq = new Joined(v.prompt.ids, v.tokens!.ids);
    const recompute = this.state.options.recomputeCaches;
    // What the cache held before this generation's first pass is unknown (an earlier prompt):
    // compare it from the start once; after that the tokenization says what changed.
    const known = v.lastRowAt < 0 ? 0 : Math.min(v.lm.length, P + firstChanged);
    const lcp = recompute ? 0 : commonPrefix(v.lm.tokens, seq, known);
    const saved = !recompute && v.lastRow !== null && lcp === v.lm.length && v.lastRowAt === lcp && need >= lcp ? v.lastRow : null;
    const from = saved ? lcp : Math.max(0, Math.min(lcp, need - 1, seq.length - 1));
    v.lm.crop(from);
    let scores: Scores | null = null;
    const fed = seq.length - from;
    // Only the rows that predict positions need..seq.length are read: ask for just those, so a
    // first pass over the whole prompt does not return a row per prompt token.
    const kept = rows === 'last' ? 1 : Math.max(1, Math.min(fed, seq.length - need + 1));
    if (from < seq.length) {
      // Each row comes with the logit of the token that follows it in this tokenization (the
      // verifier's own token there; end-of-sequence after the last), which the gates read.
      const asked = Array.from({ length: kept }, (_, i) => {
        const q = seq.length - kept + 1 + i;
        return q < seq.length ? seq.at(q) : (v.vocab.eosId ?? -1);
      });
      scores = await scorePass(this.state, v, seq.from(from), kept, asked, saved ? from : need);
      if (!scores) return null;
      v.lastRow = scores.at(-1);
      v.lastRowAt = seq.length;
    }
    const out = scores;
    return (q: number) => {
      if (saved && q === from) return saved;
      if (rows === 'last') return out!.at(-1);
      const r = q - 1 - from - (fed - kept);
      if (r < 0) throw new Error(`internal: row for position ${q} was not requested (need ${need}, from ${from})`);
      return out!.at(r);
    };
  }

  /**
   * Verifier `vi`'s row for its token `k` of the response (which starts at byte `offset` of the
   * response), masked by the constraint where one is set.
   */
  async rowFor(vi: number, rowAt: (q: number) => RowScore, k: number, response: Uint8Array, offset: number): Promise<RowScore> {
    const v = this.state.verifiers[vi]!;
    const row = rowAt(v.prompt.ids.length + k);
    const constraint = this.state.constraint;
    return constraint ? constrainRow(row, v, response.subarray(0, offset), offset === 0, constraint, tokensLeftAt(this.state, offset)) : row;
  }

  /**
   * Aligned verifier token index at byte `offset` for each verifier, or null when the position
   * is not stable (with the stability gate off: the token covering the position).
   */
  alignAt(offset: number, eos: boolean, candidate: Uint8Array): number[] | null {
    if (this.state.options.stabilityGate) return stableAlignment(candidate, offset, this.tokenizations, eos);
    const out: number[] = [];
    for (const t of this.tokenizations) {
      let k = t.tokenStartingAt(offset);
      if (k >= 0 && !eos && k >= t.ids.length) k = -1; // the text ends here for this verifier
      if (k < 0) {
        k = firstTokenAtOrAfter(t, offset + 1) - 1; // the token that covers the offset
        if (k < 0 || k >= t.ids.length) return null;
      }
      out.push(k);
    }
    return out;
  }

  async continuationProbability(verifier: number, written: Uint8Array, continuation: string): Promise<ContinuationScore | null> {
    const v = this.state.verifiers[verifier]!;
    const spans = encodeResponse(v.lm.tokenizer, v.prompt.context, fromUtf8(written) + continuation);
    // The continuation's tokens start where written ends, or there is no boundary to ask after.
    if (spans.exactBytes < written.length) return null;
    const j = written.length === 0 ? 0 : spans.ends.indexOf(written.length) + 1;
    if (j === 0 && written.length > 0) return null;
    const ids = spans.ids.slice(j);
    if (ids.length === 0) return { probability: 1, logProbability: 0, ids };
    const P = v.prompt.ids.length;
    const n = spans.ids.length;
    // Feed prompt ++ the tokens before the last; the last n - j rows predict the continuation's tokens.
    const seq = new Joined(v.prompt.ids, spans.ids.slice(0, n - 1));
    const from = Math.max(0, Math.min(commonPrefix(v.lm.tokens, seq), P + j - 1, seq.length - 1));
    v.lm.crop(from);
    // The cache no longer holds the response tokenization: the next verification compares it from the start.
    v.lastRow = null;
    v.lastRowAt = -1;
    const scores = await scorePass(this.state, v, seq.from(from), ids.length, ids, P + j);
    if (!scores) return null;
    const logits = await Promise.all(ids.map(async (id, i) => {
      const row = scores.at(i);
      return (await row.logitOf(id)) - (await row.logNormalizer());
    }));
    const logProbability = logits.reduce((s, x) => s + x, 0);
    return { probability: Math.exp(logProbability), logProbability, ids };
  }
}
