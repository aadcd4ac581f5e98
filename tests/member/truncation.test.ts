import { isKept, keptProbability, truncateRow, truncateTop, type Truncation } from '../../src/member/truncation';
import { topK } from '../../src/research';
import { seededRandom } from '../../src/demo/random';

/** The kept set the slow way: sort, cut by rank, then by cumulative probability after renormalizing. */
function bruteForce(row: Float32Array, t: Truncation): { ids: number[]; probs: Map<number, number> } {
  const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b);
  const k = t.topK > 0 ? Math.min(t.topK, row.length) : row.length;
  const head = order.slice(0, k);
  const max = row[head[0]!]! / t.temperature;
  const weights = head.map((id) => Math.exp(row[id]! / t.temperature - max));
  const sum = weights.reduce((a, b) => a + b, 0);
  let count = head.length;
  if (t.topP < 1) {
    let acc = 0;
    for (let i = 0; i < head.length; i++) {
      acc += weights[i]! / sum;
      if (acc >= t.topP) {
        count = i + 1;
        break;
      }
    }
  }
  const kept = head.slice(0, count);
  const keptSum = weights.slice(0, count).reduce((a, b) => a + b, 0);
  return { ids: kept, probs: new Map(kept.map((id, i) => [id, weights[i]! / keptSum])) };
}

function randomRow(rand: () => number, width: number, spread: number, ties: boolean): Float32Array {
  const row = Float32Array.from({ length: width }, () => (rand() - 0.5) * spread);
  // Plateaus: equal logits, so that rank ties (lower id first) are exercised.
  if (ties) for (let i = 0; i < width; i += 7) row[i] = row[0]!;
  return row;
}

describe('tempered, truncated distributions (temperature, top-k, top-p)', () => {
  const rand = seededRandom(42);
  const cases: Array<{ row: Float32Array; t: Truncation }> = [];
  for (let c = 0; c < 200; c++) {
    const width = 1 + Math.floor(rand() * 300);
    const t: Truncation = {
      temperature: [0.3, 0.7, 1, 1.5, 4][c % 5]!,
      topK: c % 3 === 0 ? 0 : 1 + Math.floor(rand() * 40),
      topP: c % 4 === 0 ? 1 : 0.05 + rand() * 0.95,
    };
    cases.push({ row: randomRow(rand, width, 4 + rand() * 20, c % 2 === 0), t });
  }

  it('keeps exactly the set a sort-and-cut reference keeps, with the same probabilities (200 random rows, ties included)', () => {
    for (const { row, t } of cases) {
      const { kept } = truncateRow(row, t);
      const want = bruteForce(row, t);
      expect(kept.count).toBe(want.ids.length);
      const keptIds = [...row.keys()].filter((id) => isKept(kept, id, row[id]!));
      expect(keptIds.sort((a, b) => a - b)).toEqual([...want.ids].sort((a, b) => a - b));
      for (const [id, p] of want.probs) expect(keptProbability(kept, id, row[id]!)).toBeCloseTo(p, 6);
    }
  });

  it('never draws outside the kept set, and draws every kept token about as often as its probability', () => {
    for (const { row, t } of cases.slice(0, 60)) {
      const { kept } = truncateRow(row, t);
      const counts = new Map<number, number>();
      const n = 400;
      for (let i = 0; i < n; i++) {
        const u = (i + 0.5) / n; // a stratified sweep of [0, 1): the inverse CDF's quantiles
        const { drawn, drawnLogit } = truncateRow(row, t, u);
        expect(isKept(kept, drawn, row[drawn]!)).toBe(true);
        expect(drawnLogit).toBe(row[drawn]);
        counts.set(drawn, (counts.get(drawn) ?? 0) + 1);
      }
      // With stratified numbers each token gets its probability's share of the sweep, ±1 draw.
      for (const [id, c] of counts) expect(Math.abs(c - n * keptProbability(kept, id, row[id]!))).toBeLessThanOrEqual(1.0001);
    }
  });

  it('a cut top-p without top-k grows its search until the nucleus is complete (a flat 5,000-token row)', () => {
    const row = new Float32Array(5000).fill(0);
    row[3] = 0.5;
    const { kept } = truncateRow(row, { temperature: 1, topK: 0, topP: 0.5 });
    expect(kept.count).toBe(bruteForce(row, { temperature: 1, topK: 0, topP: 0.5 }).ids.length);
    expect(kept.count).toBeGreaterThan(64 * 16);
  });

  it('top-k 1 always draws the argmax, whatever the temperature', () => {
    for (const { row } of cases.slice(0, 50)) {
      const best = topK(row, 1).ids[0]!;
      for (const u of [0, 0.5, 0.999999]) expect(truncateRow(row, { temperature: 3, topK: 1, topP: 1 }, u).drawn).toBe(best);
    }
  });

  it('a row known only by its top entries (a served model) treats them as the whole distribution', () => {
    const row = randomRow(seededRandom(7), 100, 10, false);
    const top = topK(row, 8);
    const { kept, drawn } = truncateTop(top, { temperature: 0.8, topK: 0, topP: 1 }, 0.3);
    expect(kept.ids).not.toBeNull();
    expect([...kept.ids!]).toEqual([...top.ids]);
    const sub = Float32Array.from(top.logits);
    const want = bruteForce(sub, { temperature: 0.8, topK: 0, topP: 1 });
    top.ids.forEach((id, i) => expect(keptProbability(kept, id, top.logits[i]!)).toBeCloseTo(want.probs.get(i)!, 6));
    expect(top.ids.includes(drawn)).toBe(true);
    // An id outside the returned entries is never kept, even at the cut's logit.
    expect(isKept(kept, 999, top.logits[7]!)).toBe(false);
  });

  it('refuses a temperature of 0 and cuts out of range (callers validate first; this is the last guard)', () => {
    const row = new Float32Array([1, 2, 3]);
    expect(() => truncateRow(row, { temperature: 0, topK: 0, topP: 1 })).toThrow(/temperature/);
    expect(() => truncateRow(row, { temperature: 1, topK: -1, topP: 1 })).toThrow(/topK/);
    expect(() => truncateRow(row, { temperature: 1, topK: 0, topP: 0 })).toThrow(/topP/);
  });
});

describe('large kept sets', () => {
  it('a hot, flat 150,000-token row: the nucleus of tens of thousands is found exactly (a sort, not an insertion buffer per entry)', () => {
    const rand = seededRandom(3);
    const row = Float32Array.from({ length: 150_000 }, () => (rand() - 0.5) * 2);
    for (let i = 0; i < 150_000; i += 1000) row[i] = row[i + 1]!; // ties
    const t = { temperature: 1.2, topK: 0, topP: 0.95 };
    const { kept } = truncateRow(row, t, 0.5);
    const want = bruteForce(row, t);
    expect(kept.count).toBe(want.ids.length);
    expect(kept.count).toBeGreaterThan(100_000);
    expect(isKept(kept, want.ids[want.ids.length - 1]!, row[want.ids[want.ids.length - 1]!]!)).toBe(true);
    // Large top-k cuts take the same path.
    const cut = truncateRow(row, { temperature: 1, topK: 5000, topP: 1 }).kept;
    expect(cut.count).toBe(5000);
    expect([...row.keys()].filter((id) => isKept(cut, id, row[id]!)).sort((a, b) => a - b)).toEqual(bruteForce(row, { temperature: 1, topK: 5000, topP: 1 }).ids.sort((a, b) => a - b));
  });
});
