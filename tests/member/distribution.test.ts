import { argmax, float16ToFloat32, isFiniteRow, logProbOf, logSumExp, probOf, topK } from '../../src/research';

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

describe('distribution helpers on one logits row', () => {
  const row = Float32Array.from([0.5, 3, -1, 3, 2.5, 10, -20, 7]);

  it('normalizer, probability and log-probability agree with a plain softmax', () => {
    const p = softmax([...row]);
    const lse = logSumExp(row);
    p.forEach((pi, i) => {
      expect(probOf(row, i, lse)).toBeCloseTo(pi, 6);
      expect(logProbOf(row, i)).toBeCloseTo(Math.log(pi), 5);
    });
  });

  it('is stable for huge logits', () => {
    const big = Float32Array.from([1e4, 1e4, 0]); // exp(1e4) overflows a naive softmax
    expect(probOf(big, 0)).toBeCloseTo(0.5, 6);
  });

  it('argmax takes the first of equal maxima (deterministic greedy)', () => {
    expect(argmax(row)).toBe(5);
    expect(argmax(Float32Array.from([1, 4, 4, 2]))).toBe(1);
  });

  it('top-k returns the best ids in order without sorting the row', () => {
    const { ids, logits } = topK(row, 3);
    expect([...ids]).toEqual([5, 7, 1]);
    expect([...logits]).toEqual([10, 7, 3]);
    expect([...topK(row, 20).ids]).toHaveLength(8);
    const rand = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
    const ref = [...rand.keys()].sort((a, b) => rand[b]! - rand[a]! || a - b).slice(0, 10);
    expect([...topK(rand, 10).ids]).toEqual(ref);
  });

  it('detects non-finite rows and converts float16', () => {
    expect(isFiniteRow(row)).toBe(true);
    expect(isFiniteRow(Float32Array.from([1, NaN]))).toBe(false);
    expect(isFiniteRow(Float32Array.from([3e38, 3e38]))).toBe(true);
    expect([...float16ToFloat32(Uint16Array.from([0x3c00, 0xc000, 0x7c00, 0x0001]))]).toEqual([1, -2, Infinity, 2 ** -24]);
  });
});

describe('fast exponential and row summary', () => {
  it('expNonPositive matches Math.exp to 2e-7 relative on [-32, 0]', () => {
    const { expNonPositive } = jest.requireActual('../../src/member/distribution');
    let worst = 0;
    for (let x = -32; x <= 0; x += 0.0137) worst = Math.max(worst, Math.abs(expNonPositive(x) / Math.exp(x) - 1));
    expect(worst).toBeLessThan(2e-7);
  });

  it('rowSummary gives the normalizer and the argmax', () => {
    const { rowSummary } = jest.requireActual('../../src/member/distribution');
    const row = Float32Array.from([1, 5, 2, 5, -3]);
    const s = rowSummary(row);
    expect(s.argmax).toBe(1);
    expect(s.logNormalizer).toBeCloseTo(Math.log([1, 5, 2, 5, -3].reduce((a, x) => a + Math.exp(x), 0)), 6);
  });
});

describe('float16ToFloat32', () => {
  it('converts every half-precision bit pattern exactly', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const out = float16ToFloat32(all);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const frac = h & 0x3ff;
      const expected = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
      if (Number.isNaN(expected)) expect(out[h]).toBeNaN();
      else expect(Object.is(out[h], Math.fround(expected))).toBe(true);
    }
  });
});
