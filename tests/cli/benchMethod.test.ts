import { fullGc, namesSomeoneElse, speedRatio, timed, williamsOrders, type Measurement } from '../../src/cli/benchMethod';

describe('the benchmark method', () => {
  it.each([2, 3, 4, 5, 9])('a Williams design of %i methods balances positions and predecessors', (m) => {
    const rows = williamsOrders(m);
    expect(rows.length).toBe(m % 2 === 0 ? m : 2 * m);
    const position = Array.from({ length: m }, () => new Array<number>(m).fill(0));
    const follows = Array.from({ length: m }, () => new Array<number>(m).fill(0));
    for (const row of rows) {
      expect([...row].sort((a, b) => a - b)).toEqual([...Array(m).keys()]);
      row.forEach((x, p) => position[x]![p]!++);
      for (let p = 1; p < m; p++) follows[row[p - 1]!]![row[p]!]!++;
    }
    // Every method in every position equally often; every ordered pair adjacent equally often.
    const perPosition = rows.length / m;
    for (const counts of position) expect(counts).toEqual(new Array(m).fill(perPosition));
    const adjacent = m === 1 ? 0 : (rows.length * (m - 1)) / (m * (m - 1));
    for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) if (a !== b) expect(follows[a]![b]).toBe(adjacent);
  });

  const m = (problem: number, tokens: number, wallMs: number, cpuMs = wallMs): Measurement => ({ problem, position: 0, tokens, ensembled: 0, wallMs, cpuMs, correct: true, startsWithSpace: false, foreignName: false });

  it('speed ratios are tokens per second over the reference, with an interval that holds them', () => {
    const reference = [m(0, 50, 100), m(1, 60, 110), m(2, 40, 90), m(3, 55, 100)];
    const same = speedRatio(reference, reference, 'wallMs');
    expect(same).toEqual({ ratio: 1, low: 1, high: 1 });
    const half = speedRatio(reference.map((x) => ({ ...x, wallMs: x.wallMs * 2 })), reference, 'wallMs');
    expect(half.ratio).toBeCloseTo(0.5, 10);
    const noisy = speedRatio([m(0, 50, 150), m(1, 60, 100), m(2, 40, 200), m(3, 55, 120)], reference, 'wallMs');
    expect(noisy.low).toBeLessThanOrEqual(noisy.ratio);
    expect(noisy.high).toBeGreaterThanOrEqual(noisy.ratio);
    expect(noisy.high).toBeGreaterThan(noisy.low);
    expect(speedRatio(reference, reference.map((x) => ({ ...x, cpuMs: x.cpuMs * 4 })), 'cpuMs').ratio).toBeCloseTo(4, 10);
    expect(() => speedRatio([], [], 'wallMs')).toThrow(RangeError);
  });

  it('collects garbage on demand and times CPU beside the wall clock', async () => {
    expect(fullGc()).toBe(true);
    const t = await timed(async () => {
      let x = 0;
      for (let i = 0; i < 2e6; i++) x += Math.sqrt(i);
      return x;
    });
    expect(t.value).toBeGreaterThan(0);
    expect(t.cpuMs).toBeGreaterThan(0);
    expect(t.wallMs).toBeGreaterThan(0);
  });

  it('counts names the question does not contain, garbled ones too, not sentence words', () => {
    const q = 'Xiomara has 37 marbles. She finds 25 more. How many marbles does she have now?';
    expect(namesSomeoneElse('Xiomara starts with 37 marbles. After finding 25 more she has 37 + 25 = 62. The answer is 62.', q)).toBe(false);
    expect(namesSomeoneElse('Fatiomara starts with 37 marbles.', q)).toBe(true);
    expect(namesSomeoneElse('Xi omara starts with 37 marbles.', q)).toBe(true);
    expect(namesSomeoneElse('X iomara starts', q)).toBe(true);
  });
});
