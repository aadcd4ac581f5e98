/**
 * Reduced scoring (CausalLM.score): the summary of each row equals what the full row says, the
 * full rows stay with the session and read back bit-identical, and a row the sequence no longer
 * backs (cropped, re-fed, released by holdFrom) is refused, never mixed up — inline and in a
 * worker alike.
 */
import { DisposedError, InferenceError, InvalidArgumentError, loadModel, type CausalLM } from '../../src/index';
import { liveSessionCount, liveWorkerCount, logSumExp, topK } from '../../src/research';
import { fixtureModel } from '../helpers/fixtures';

const MODEL = fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 41, logitScale: 2 });
const PROMPT = 'Q: Ana has 12 apples and buys 30 more. How many?\nA:';

describe.each(['inline', 'worker'] as const)('score() with %s execution', (execution) => {
  let lm: CausalLM;
  let reference: CausalLM;
  let ids: number[];
  const before = { sessions: 0, workers: 0 };
  beforeAll(async () => {
    before.sessions = liveSessionCount();
    before.workers = liveWorkerCount();
    lm = await loadModel(MODEL, { execution });
    reference = await loadModel(MODEL, { execution: 'inline' });
    ids = lm.tokenizer.encode(PROMPT);
  });
  afterAll(async () => {
    await lm.dispose();
    await reference.dispose();
    expect(liveSessionCount()).toBe(before.sessions);
    expect(liveWorkerCount()).toBe(before.workers);
  });
  beforeEach(() => {
    lm.reset();
    reference.reset();
  });

  it('summarizes each row as the full row says: top-k (ties to the lower id), argmax, asked logit', async () => {
    const asked = [ids[ids.length - 3]!, ids[ids.length - 2]!, ids[ids.length - 1]!, 7];
    const scores = await lm.score(ids, { rows: 4, topK: 10, asked });
    const full = await reference.forward(ids, { logits: 4 });
    expect(scores.rows).toBe(4);
    for (let r = 0; r < 4; r++) {
      const row = full.row(r);
      const s = scores.at(r);
      expect(s.position).toBe(ids.length - 3 + r);
      expect(s.best).toBe(full.argmax(r));
      expect(s.max).toBe(row[full.argmax(r)]);
      const top = topK(row, 10);
      expect(Array.from(s.top().ids)).toEqual(Array.from(top.ids));
      expect(Array.from(s.top(3).logits)).toEqual(Array.from(top.logits.subarray(0, 3)));
      expect(s.askedId).toBe(asked[r]);
      expect(s.askedLogit).toBe(row[asked[r]!]);
      expect(await s.logitOf(asked[r]!)).toBe(row[asked[r]!]);
    }
  });

  it('reads held rows back bit-identical: ids, normalizer, whole row', async () => {
    const scores = await lm.score(ids, { rows: 2, topK: 4 });
    const full = await reference.forward(ids, { logits: 2 });
    for (let r = 0; r < 2; r++) {
      const row = full.row(r);
      const s = scores.at(r);
      expect(Array.from(await s.logitsOf([0, 5, 999, row.length - 1]))).toEqual([row[0], row[5], row[999], row[row.length - 1]]);
      expect(await s.logitOf(1234)).toBe(row[1234]);
      expect(await s.logNormalizer()).toBe(logSumExp(row));
      expect(await s.row()).toEqual(row);
    }
    // Steps after the prefill keep their rows too, each under its own position.
    const step = await lm.score([11], { rows: 'last', topK: 2 });
    const stepRef = await reference.forward([11], { logits: 'last' });
    expect(step.at(0).position).toBe(ids.length + 1);
    expect(await step.at(0).row()).toEqual(stepRef.row(0));
    expect(await scores.at(1).logitOf(77)).toBe(full.row(1)[77]);
  });

  it('returns whole rows with full: true', async () => {
    const scores = await lm.score(ids, { rows: 2, full: true });
    const full = await reference.forward(ids, { logits: 2 });
    expect(await scores.at(0).row()).toEqual(full.row(0));
    expect(await scores.at(1).logNormalizer()).toBe(logSumExp(full.row(1)));
  });

  it('refuses rows the sequence no longer backs: cropped, re-fed since, or dropped by holdFrom', async () => {
    const first = await lm.score(ids, { rows: 3 });
    lm.crop(ids.length - 1);
    // The row predicting position ids.length - 1 survives (its context is still cached)...
    await expect(first.at(1).logNormalizer()).resolves.toEqual(expect.any(Number));
    // ...the one predicting ids.length does not.
    await expect(first.at(2).logNormalizer()).rejects.toThrow(InferenceError);
    await expect(first.at(2).row()).rejects.toThrow(/predicting position \d+ is gone: the sequence was cropped/);
    // Re-feeding a different token at the same position makes a new row: the old one is not read for it.
    lm.crop(ids.length - 2);
    const again = await lm.score([ids[ids.length - 2]!, 5], { rows: 'all' });
    await expect(first.at(1).logitsOf([3])).rejects.toThrow(/no longer held/);
    expect(again.at(0).position).toBe(ids.length - 1);
    await expect(again.at(0).logitsOf([3])).resolves.toHaveLength(1);
    // holdFrom: a later pass says rows before a position are not needed.
    await lm.score([6], { rows: 1, holdFrom: ids.length + 1 });
    await expect(again.at(1).row()).rejects.toThrow(/no longer held/);
    // Summaries stay readable: they came back with the pass.
    expect(again.at(1).best).toEqual(expect.any(Number));
  });

  it('rejects bad options with typed errors, leaving the sequence as it was', async () => {
    await expect(lm.score(ids, { rows: 2, asked: [1] })).rejects.toThrow(InvalidArgumentError);
    await expect(lm.score(ids, { topK: 0 })).rejects.toThrow(/topK >= 1/);
    await expect(lm.score(ids, { rows: ids.length + 1 })).rejects.toThrow(/1\.\.\d+ logits rows/);
    await expect(lm.score([lm.info.vocabSize + 5])).rejects.toThrow(/outside the vocabulary/);
    expect(lm.length).toBe(0);
    const s = await lm.score(ids, { rows: 1, topK: 2 });
    expect(() => s.at(0).top(5)).toThrow(/score with a larger topK/);
    expect(() => s.at(3)).toThrow(/out of range/);
  });

  it('refuses reads after dispose()', async () => {
    const other = await loadModel(MODEL, { execution });
    const s = await other.score(ids, { rows: 1 });
    await other.dispose();
    await expect(s.at(0).row()).rejects.toThrow(DisposedError);
  });
});
