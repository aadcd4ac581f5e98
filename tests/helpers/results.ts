import type { EnsembleResult } from '../../src/index';

/**
 * The deterministic part of a result: everything but the timings and the pipeline's counts
 * (how far the drafter got ahead depends on timing). Equal inputs must give equal values here,
 * whatever the execution mode.
 */
export function comparable(r: EnsembleResult): unknown {
  const { time: _t, pipeline: _p, ...stats } = r.stats;
  void _t;
  void _p;
  return { text: r.text, finishReason: r.finishReason, stats, trace: r.trace };
}

/** {@link comparable} without the network counts remote members add (a remote run compared with an all-local one). */
export function comparableWithoutNetwork(r: EnsembleResult): unknown {
  const c = comparable(r) as { stats: Record<string, unknown> };
  const { network: _n, ...stats } = c.stats;
  void _n;
  return { ...c, stats };
}
