/**
 * The benchmark's main table: one row per method and drafter, single models first.
 * @module
 */

/** One benchmark row: a method with one drafter in one model set. */
export interface BenchRow {
  /** The model set (folder names), drafter included. */
  models: string[];
  method: string;
  drafter: string;
  accuracy: number;
  etPct: number;
  /** Wall-clock tokens per second. */
  tokensPerSecond: number;
  /** Wall-clock speed relative to the drafter alone. */
  speedVsDrafter: number;
  /** 95% bootstrap interval of `speedVsDrafter`. */
  speedInterval: [number, number];
  /** CPU-time speed relative to the drafter alone. */
  cpuSpeedVsDrafter: number;
  /** 95% bootstrap interval of `cpuSpeedVsDrafter`. */
  cpuSpeedInterval: [number, number];
  /** Outputs that start with whitespace. */
  startsWithSpace: number;
  /** Outputs that name someone the question does not. */
  namesNotInPrompt: number;
  /** Self-check: faster than the drafter alone beyond the interval (wall or CPU). */
  flagged: boolean;
  correct: number;
  problems: number;
}

const ratio = (r: number, [lo, hi]: [number, number]) => `${r.toFixed(2)}× (${lo.toFixed(2)}–${hi.toFixed(2)})`;

/** The rows as a Markdown table (`many`: several model sets, so a models column and the run's order). */
export function methodTable(rows: readonly BenchRow[], many: boolean): string {
  let out = `|${many ? ' models |' : ''} method | drafter | accuracy | E/T % | starts with space | names not in prompt | tokens/s | speed vs drafter alone (wall) | (CPU) | check |\n|${many ? '---|' : ''}---|---|---:|---:|---:|---:|---:|---:|---:|---|\n`;
  const ordered = many ? rows : [...rows.filter((r) => r.method === 'single model'), ...rows.filter((r) => r.method !== 'single model')];
  for (const r of ordered) {
    const check = r.flagged ? 'FASTER THAN ITS DRAFTER' : r.method === 'single model' ? 'reference' : 'ok';
    out += `|${many ? ` ${r.models.join(' + ')} |` : ''} ${r.method} | ${r.drafter} | ${(r.accuracy * 100).toFixed(1)}% | ${r.etPct.toFixed(2)} | ${r.startsWithSpace} | ${r.namesNotInPrompt} | ${r.tokensPerSecond.toFixed(0)} | ${ratio(r.speedVsDrafter, r.speedInterval)} | ${ratio(r.cpuSpeedVsDrafter, r.cpuSpeedInterval)} | ${check} |\n`;
  }
  return out;
}
