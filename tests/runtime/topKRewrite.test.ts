/**
 * In-graph scores (topKRewrite.ts): the TopK and row sums appended after the logits agree with
 * the JavaScript selection bit for bit — ties to the lower id, float16 logits, every ReduceSum
 * form — and a model that loads with them scores exactly as one without, inline and in a worker.
 */
import * as ort from 'onnxruntime-node';
import { InferenceError, loadModel } from '../../src/index';
import { float16ToFloat32, isFiniteRow, liveSessionCount, liveWorkerCount, topK } from '../../src/research';
import { addInGraphScores } from '../../src/runtime/topKRewrite';
import { DT, encodeModel, GraphBuilder } from '../../tools/fixtures/onnxGraph';
import { writeFixtureModel, type TinyDecoderSpec } from '../../tools/fixtures/tinyDecoder';
import { fixtureModel, scratchDir } from '../helpers/fixtures';

/** `logits = x` (through a float16 cast when asked): the rewrite sees whatever rows the test feeds. */
function passThrough(opset: number, dtype: 'float32' | 'float16' = 'float32'): Uint8Array {
  const g = new GraphBuilder();
  g.input('x', DT.float, [1, 'rows', 'width']);
  if (dtype === 'float16') g.o('Cast', ['x'], { to: DT.float16 }, 'logits');
  else g.o('Identity', ['x'], {}, 'logits');
  g.output('logits', dtype === 'float16' ? DT.float16 : DT.float, [1, 'rows', 'width']);
  return encodeModel(g.toGraph('pass_through'), opset);
}

const WIDTH = 50;
/** Rows with ties, plateaus, huge and tiny values, -Inf, +Inf and NaN. */
function rows(): Float32Array[] {
  const out: Float32Array[] = [];
  out.push(new Float32Array(WIDTH)); // all equal: the lowest ids win
  out.push(Float32Array.from({ length: WIDTH }, (_, i) => (i % 7 === 3 ? 2.5 : -1))); // a tied maximum
  out.push(Float32Array.from({ length: WIDTH }, (_, i) => Math.sin(i * 1.7) * 30));
  out.push(Float32Array.from({ length: WIDTH }, (_, i) => (i === 20 ? 3e38 : i === 21 ? 3e38 : i))); // a sum that overflows
  out.push(Float32Array.from({ length: WIDTH }, (_, i) => (i === 5 ? -Infinity : i / 3)));
  out.push(Float32Array.from({ length: WIDTH }, (_, i) => (i === 9 ? NaN : i)));
  out.push(Float32Array.from({ length: WIDTH }, (_, i) => (i === 40 ? Infinity : -i)));
  return out;
}

describe('addInGraphScores', () => {
  it.each([
    [11, 'float32'],
    [12, 'float32'],
    [13, 'float32'],
    [17, 'float32'],
    [14, 'float16'],
  ] as const)('opset %i, %s logits: top-k equals the JavaScript selection, sums flag non-finite rows', async (opset, dtype) => {
    const rewritten = addInGraphScores(passThrough(opset, dtype))!;
    expect(rewritten).not.toBeNull();
    const session = await ort.InferenceSession.create(rewritten.bytes);
    try {
      const all = rows();
      const x = new Float32Array(all.length * WIDTH);
      all.forEach((r, i) => x.set(r, i * WIDTH));
      for (const k of [1, 3, 10, WIDTH]) {
        const out = await session.run(
          { x: new ort.Tensor('float32', x, [1, all.length, WIDTH]), [rewritten.names.k]: new ort.Tensor('int64', BigInt64Array.of(BigInt(k)), [1]) },
          ['logits', rewritten.names.topLogits, rewritten.names.topIds, rewritten.names.rowSums],
        );
        const logits = out.logits!.data as Float32Array | Uint16Array;
        const values = out[rewritten.names.topLogits]!.data as Float32Array;
        const ids = out[rewritten.names.topIds]!.data as BigInt64Array;
        const sums = out[rewritten.names.rowSums]!.data as Float32Array;
        all.forEach((_, r) => {
          const slice = logits.subarray(r * WIDTH, (r + 1) * WIDTH);
          const row = dtype === 'float16' ? float16ToFloat32(slice as Uint16Array) : (slice as Float32Array);
          // A finite sum vouches for the row; only such rows take the in-graph top-k.
          if (Number.isFinite(sums[r]!)) expect(isFiniteRow(row)).toBe(true);
          if (!isFiniteRow(row)) {
            expect(Number.isFinite(sums[r]!)).toBe(false);
            return;
          }
          if (!Number.isFinite(sums[r]!)) return; // overflowed: the engine reads this row itself
          const expected = topK(row, k);
          expect(Array.from(ids.subarray(r * k, (r + 1) * k), Number)).toEqual(Array.from(expected.ids));
          expect(Array.from(values.subarray(r * k, (r + 1) * k))).toEqual(Array.from(expected.logits));
        });
      }
    } finally {
      await session.release();
    }
  });

  it('leaves graphs it cannot serve alone: opset 10, no logits output, already rewritten', () => {
    expect(addInGraphScores(passThrough(10))).toBeNull();
    const g = new GraphBuilder();
    g.input('x', DT.float, [1, 2, 3]);
    g.o('Identity', ['x'], {}, 'scores');
    g.output('scores', DT.float, [1, 2, 3]);
    expect(addInGraphScores(encodeModel(g.toGraph('other'), 14))).toBeNull();
    expect(addInGraphScores(addInGraphScores(passThrough(14))!.bytes)).toBeNull();
    // Bytes that are not a model: the reader throws, and openSession runs the file as exported.
    expect(() => addInGraphScores(new Uint8Array([10, 200, 3]))).toThrow(RangeError);
  });
});

describe.each(['inline', 'worker'] as const)('scoring with in-graph top-k, %s execution', (execution) => {
  const before = { sessions: 0, workers: 0 };
  beforeAll(() => {
    before.sessions = liveSessionCount();
    before.workers = liveWorkerCount();
  });
  afterAll(() => {
    expect(liveSessionCount()).toBe(before.sessions);
    expect(liveWorkerCount()).toBe(before.workers);
  });

  it.each([
    ['qwen3, float32 logits', { tokenizer: 'qwen3', hiddenSize: 16, seed: 41, logitScale: 2 }],
    ['llama2, float16 logits', { tokenizer: 'llama2', hiddenSize: 16, seed: 42, logitsDType: 'float16' }],
    ['llama3, flat logits (every id ties)', { tokenizer: 'llama3', hiddenSize: 16, seed: 43, logitScale: 0 }],
    ['merged decoder without logits_to_keep', { tokenizer: 'llama2', hiddenSize: 16, seed: 44, cache: 'merged' }],
    ['no cache', { tokenizer: 'llama2', hiddenSize: 16, seed: 45, cache: 'none' }],
  ] as const)('%s: summaries equal those of the model loaded without', async (_label, spec) => {
    const dir = fixtureModel(spec as Parameters<typeof fixtureModel>[0]);
    const lm = await loadModel(dir, { execution });
    const plain = await loadModel(dir, { execution: 'inline', inGraphTopK: false });
    try {
      expect(lm.info.inGraphTopK).toBe(true);
      expect(plain.info.inGraphTopK).toBe(false);
      const ids = lm.tokenizer.encode('Q: Ana has 12 apples and buys 30 more. How many?\nA:');
      for (const k of [1, 4, 10]) {
        lm.reset();
        plain.reset();
        const asked = ids.slice(-5).concat(-1).slice(1);
        const got = await lm.score(ids, { rows: 5, topK: k, asked });
        const want = await plain.score(ids, { rows: 5, topK: k, asked });
        const step = await lm.score([ids[3]!], { rows: 1, topK: k });
        const stepWant = await plain.score([ids[3]!], { rows: 1, topK: k });
        for (const [a, b] of [[got, want], [step, stepWant]] as const) {
          for (let r = 0; r < a.rows; r++) {
            const x = a.at(r);
            const y = b.at(r);
            expect(Array.from(x.top(k).ids)).toEqual(Array.from(y.top(k).ids));
            expect(Array.from(x.top(k).logits)).toEqual(Array.from(y.top(k).logits));
            expect(x.askedLogit).toEqual(y.askedLogit);
            expect(await x.logNormalizer()).toBe(await y.logNormalizer());
          }
        }
      }
      if ('logitScale' in spec && spec.logitScale === 0) expect(Array.from((await lm.score([5], { rows: 1, topK: 4 })).at(0).top(4).ids)).toEqual([0, 1, 2, 3]);
      // forward() fetches no in-graph scores and still returns whole rows.
      lm.reset();
      plain.reset();
      expect((await lm.forward(ids, { logits: 1 })).row(0)).toEqual((await plain.forward(ids, { logits: 1 })).row(0));
    } finally {
      await lm.dispose();
      await plain.dispose();
    }
  });

  it('still refuses a non-finite row: the sum flags it, the row confirms it', async () => {
    // A decoder whose logits turn NaN once the sequence passes 6 tokens (sqrt of a negative number).
    const extraLogits: TinyDecoderSpec['extraLogits'] = (g, io) => {
      const room = g.o('Cast', [g.o('Sub', [g.int64Tensor([6], []), io.tLen])], { to: DT.float });
      return g.o('Mul', [g.o('Sqrt', [room]), g.floatScalar(0)]);
    };
    const dir = writeFixtureModel(scratchDir('nan-scores'), { tokenizer: 'qwen3', hiddenSize: 16, seed: 46, extraLogits });
    const lm = await loadModel(dir, { execution });
    try {
      expect(lm.info.inGraphTopK).toBe(true);
      await expect(lm.score([1, 2, 3, 4, 5, 6, 7, 8], { rows: 3, topK: 5 })).rejects.toThrow(InferenceError);
      expect(lm.length).toBe(0);
      await expect(lm.score([1, 2, 3], { rows: 3, topK: 5 })).resolves.toBeDefined();
    } finally {
      await lm.dispose();
    }
  });
});
