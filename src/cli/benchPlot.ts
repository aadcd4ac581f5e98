/**
 * The accuracy-against-speed scatter `safe-ensemble bench --plot` writes.
 * @module
 */
/** What the plot reads of a benchmark row (`BenchRow` in bench.ts). */
export interface PlotRow {
  /** The model set, drafter first when the first model drafts. */
  models: string[];
  method: string;
  drafter: string;
  accuracy: number;
  speedVsDrafter: number;
  /** 95% interval of `speedVsDrafter`, drawn as a whisker. */
  speedInterval?: [number, number];
}

/** An SVG scatter of accuracy against speed relative to the drafter alone. */
export function plotSvg<Row extends PlotRow>(rows: readonly Row[]): string {
  const W = 760;
  const H = 460;
  const m = { l: 70, r: 230, t: 40, b: 60 };
  const maxX = Math.max(1.1, ...rows.map((r) => r.speedInterval?.[1] ?? r.speedVsDrafter)) * 1.05;
  const x = (v: number) => m.l + (v / maxX) * (W - m.l - m.r);
  const y = (v: number) => H - m.b - v * (H - m.t - m.b);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  const methods = [...new Set(rows.map((r) => r.method))];
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="24" font-size="15">Accuracy vs speed (relative to the drafter alone)</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
  ];
  for (let t = 0; t <= 10; t += 2) parts.push(`<text x="${m.l - 8}" y="${y(t / 10) + 4}" text-anchor="end">${t * 10}%</text><line x1="${m.l}" x2="${W - m.r}" y1="${y(t / 10)}" y2="${y(t / 10)}" stroke="#eee"/>`);
  for (let t = 0; t <= maxX + 1e-9; t += 0.25) parts.push(`<text x="${x(t)}" y="${H - m.b + 18}" text-anchor="middle">${t.toFixed(2)}×</text>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 15}" text-anchor="middle">speed vs drafter-only</text>`);
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">accuracy</text>`);
  rows.forEach((r) => {
    const c = colors[methods.indexOf(r.method) % colors.length];
    // The 95% interval of the wall-clock ratio as a horizontal whisker.
    const [lo, hi] = r.speedInterval ?? [r.speedVsDrafter, r.speedVsDrafter];
    parts.push(`<line x1="${x(lo)}" x2="${x(hi)}" y1="${y(r.accuracy)}" y2="${y(r.accuracy)}" stroke="${c}" stroke-width="1.5"/>`);
    const shape = r.drafter !== r.models[0] ? `<rect x="${x(r.speedVsDrafter) - 5}" y="${y(r.accuracy) - 5}" width="10" height="10" fill="${c}"/>` : `<circle cx="${x(r.speedVsDrafter)}" cy="${y(r.accuracy)}" r="5.5" fill="${c}"/>`;
    parts.push(shape);
  });
  methods.forEach((method, i) => parts.push(`<circle cx="${W - m.r + 20}" cy="${m.t + 10 + i * 20}" r="5" fill="${colors[i % colors.length]}"/><text x="${W - m.r + 32}" y="${m.t + 14 + i * 20}">${esc(method)}</text>`));
  parts.push(`<text x="${W - m.r + 15}" y="${m.t + 30 + methods.length * 20}">● first model drafts, ■ second</text>`);
  parts.push(`<text x="${W - m.r + 15}" y="${m.t + 48 + methods.length * 20}">whiskers: 95% interval (wall)</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
