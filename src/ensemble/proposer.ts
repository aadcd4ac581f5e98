/**
 * The proposer: the drafter's side of SAFE. Drafts a chunk (greedily, or drawing each token
 * when sampling), drafts ahead while the verifiers work, and after the ensemble decides rolls its
 * cache back to what the new sequence shares with it. It keeps the tokens drafted past the
 * committed ones (`carry`) for the next cycle.
 * @module
 */
import type { RowScore, Scores } from '../member/scores.js';
import type { KeptSet } from '../member/truncation.js';
import { constrainRow } from './constraint.js';
import { Stream } from './sampling.js';
import { commonPrefix, Joined, scorePass, scoringTopK, type Drafted, type GenerationState } from './sequence.js';

export class DraftProposer {
  /** Drafted tokens carried into the next cycle. */
  carry: Drafted[] = [];
  /**
   * How many ids of the drafter's response sequence (committed, then drafted/carried) its cache
   * holds after the prompt; -1 until the first feed (the cache may hold an earlier prompt).
   */
  private cachedIds = -1;

  constructor(private readonly state: GenerationState) {}

  /**
   * Drafts onto `list` until it holds `until` tokens or ends with EOS (or `stop()` says so);
   * false when aborted. Tokens drafted `ahead` are not counted yet (see the loop in generation.ts).
   */
  async draftInto(list: Drafted[], until: number, ahead: boolean, stop: () => boolean = () => false): Promise<boolean> {
    const { state } = this;
    const { drafter } = state;
    const tok = drafter.lm.tokenizer;
    // A served drafter drafts a chunk per request greedily; sampling (and a constraint) decide each token here.
    if (drafter.lm.draft && !state.options.recomputeCaches && !state.sampling && !state.constraint) return this.draftChunks(list, until, ahead, stop);
    while (list.length < until && !stop()) {
      const last = list[list.length - 1];
      if (last && drafter.vocab.isEos(last.id)) break;
      const offset = last ? last.offset + tok.tokenBytes(last.id).length : state.bytes.length;
      const next = await this.nextRow(list, !ahead);
      if (!next) return false;
      const index = state.ids.length + list.length;
      // Tokens drafted ahead belong to the next cycle: they take that cycle's numbers.
      const drawn = await this.drawDrafted(next, state.stats.cycles + (ahead ? 1 : 0), index);
      list.push({ id: drawn.id, score: next, logit: drawn.logit, offset, index, counted: !ahead });
      if (!ahead) state.stats.draftedTokens++;
    }
    return true;
  }

  /**
   * The drafter's row for the token after the committed response and `drafted`, masked by the
   * constraint where one is set.
   */
  async nextRow(drafted: readonly Drafted[] = [], countPass = true): Promise<RowScore | null> {
    const row = await this.drafterRow(drafted.map((d) => d.id), countPass);
    const constraint = this.state.constraint;
    if (!row || !constraint) return row;
    const { written, atStart } = this.writtenBefore(drafted);
    const left = this.state.budget - this.state.ids.length - drafted.length;
    return constrainRow(row, this.state.drafter, written, atStart, constraint, left);
  }

  /** The response (without the drafter's lead) before the token after `drafted`, for the constraint. */
  private writtenBefore(drafted: readonly Drafted[]): { written: Uint8Array; atStart: boolean } {
    const { state } = this;
    const tok = state.drafter.lm.tokenizer;
    const text = state.bytes.with(drafted.filter((d) => !state.drafter.vocab.isEos(d.id)).map((d) => tok.tokenBytes(d.id)));
    if (state.ids.length === 0 && drafted.length === 0) return { written: text, atStart: true };
    const lead = state.ids.length === 0 ? this.leadOf(drafted[0]!.id) : state.lead;
    return { written: text.subarray(lead), atStart: false };
  }

  /**
   * draftInto for a member that drafts several tokens per call ({@link SequenceModel.draft}):
   * the same tokens and counts as drafting one by one (each token counts as a pass).
   */
  private async draftChunks(list: Drafted[], until: number, ahead: boolean, stop: () => boolean): Promise<boolean> {
    const { state } = this;
    const { drafter, options } = state;
    const lm = drafter.lm;
    const tok = lm.tokenizer;
    const P = drafter.prompt.ids.length;
    while (list.length < until && !stop()) {
      const last = list[list.length - 1];
      if (last && drafter.vocab.isEos(last.id)) break;
      if (options.signal?.aborted) {
        state.finish = 'abort';
        return false;
      }
      const seq = new Joined(drafter.prompt.ids, state.ids, list.map((d) => d.id));
      const from = Math.min(commonPrefix(lm.tokens, seq, this.cachedIds < 0 ? 0 : Math.min(lm.length, P + this.cachedIds)), seq.length - 1);
      lm.crop(from);
      const t0 = performance.now();
      let rows: Scores;
      try {
        const signal = options.signal;
        rows = await lm.draft!(seq.from(from), until - list.length, { topK: scoringTopK(state, drafter), ...(signal ? { signal } : {}) });
      } catch (error) {
        if (options.signal?.aborted) {
          state.finish = 'abort';
          return false;
        }
        throw error;
      }
      state.stats.time.draftingMs += performance.now() - t0;
      this.cachedIds = seq.length - P + rows.rows;
      for (let r = 0; r < rows.rows; r++) {
        const row = rows.at(r);
        const prev = list[list.length - 1];
        const offset = prev ? prev.offset + tok.tokenBytes(prev.id).length : state.bytes.length;
        list.push({ id: row.best, score: row, offset, index: state.ids.length + list.length, counted: !ahead });
        if (!ahead) {
          state.stats.draftedTokens++;
          drafter.forwardPasses++;
        }
        if (drafter.vocab.isEos(row.best)) break;
      }
    }
    return true;
  }

  /**
   * The drafter's next-token row after prompt ++ committed response ++ `extra` (drafted ids),
   * feeding only what its cache lacks. `cachedIds` says how much of response ++ extra is cached.
   */
  private async drafterRow(extra: readonly number[], countPass: boolean): Promise<RowScore | null> {
    const { state } = this;
    const lm = state.drafter.lm;
    const P = state.drafter.prompt.ids.length;
    const seq = new Joined(state.drafter.prompt.ids, state.ids, extra);
    let from: number;
    if (state.options.recomputeCaches) from = 0;
    else from = Math.min(commonPrefix(lm.tokens, seq, this.cachedIds < 0 ? 0 : Math.min(lm.length, P + this.cachedIds)), seq.length - 1);
    lm.crop(from);
    // Rows of tokens already committed are not read again.
    const t0 = performance.now();
    const scores = await scorePass(state, state.drafter, seq.from(from), 1, null, P + state.ids.length, countPass);
    state.stats.time.draftingMs += performance.now() - t0;
    if (!scores) return null;
    this.cachedIds = seq.length - P;
    return scores.at(-1);
  }

  /** The drafter's token at a row: its greedy choice, or when sampling its draw. */
  async drawDrafted(row: RowScore, cycle: number, index: number, greedy = false): Promise<{ id: number; logit: number; kept: KeptSet | null }> {
    const sampling = this.state.sampling;
    if (!sampling || greedy) return { id: row.best, logit: row.max, kept: null };
    return row.draw(sampling.truncation, sampling.random.uniform(Stream.Draft, cycle, index));
  }

  /** 1 when `firstId`, the drafter's first token, carries the dummy space of its response encoding. */
  leadOf(firstId: number): number {
    const { drafter } = this.state;
    if (!drafter.addsSpace || drafter.vocab.isEos(firstId)) return 0;
    return drafter.lm.tokenizer.tokenBytes(firstId)[0] === 0x20 ? 1 : 0;
  }

  /**
   * After a cycle commits `commit` when something other than the draft was fed to the drafter
   * after the committed ids (look-ahead scoring): keep what its cache actually shares with the
   * commit, compared token by token from the committed ids on.
   */
  resync(commit: readonly number[]): void {
    const { state } = this;
    const lm = state.drafter.lm;
    const base = state.drafter.prompt.ids.length + state.ids.length;
    const cached = lm.tokens;
    let keep = 0;
    while (keep < commit.length && base + keep < lm.length && cached[base + keep] === commit[keep]) keep++;
    lm.crop(base + keep);
    this.carry = [];
    this.cachedIds = state.ids.length + keep;
  }

  /**
   * After a cycle commits `commit` (and carries `carry` on): the drafter's cache holds the
   * committed ids plus the drafted ones it fed (`chain`); keep what the new sequence shares with it.
   */
  rollback(commit: readonly number[], chain: readonly Drafted[]): void {
    const { state } = this;
    const next = commit.concat(this.carry.map((d) => d.id));
    const fed = this.cachedIds - state.ids.length;
    let keep = 0;
    while (keep < fed && keep < next.length && next[keep] === chain[keep]!.id) keep++;
    state.drafter.lm.crop(state.drafter.prompt.ids.length + state.ids.length + keep);
    this.cachedIds = state.ids.length + keep;
  }
}
