/**
 * What crosses the member seam during a generation: reduced rows per pass, whole rows only where
 * an ensemble needs them (GaC, traces), and with UniTE only the logits of its fill-in ids. With
 * worker execution these are the bytes the workers send to the main thread.
 */
import { SafeEnsemble, type CausalLM, type EnsembleOptions } from '../../src/index';
import { type SeamTraffic } from '../../src/research';
import { bundledModels } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';

describe('member seam traffic on the bundled models', () => {
  let ensemble: SafeEnsemble;
  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: bundledModels(), drafter: 1 });
  });
  afterAll(async () => {
    await ensemble.dispose();
  });

  /** Runs a few problems; returns each member's traffic over them and the generation totals. */
  async function measure(options: EnsembleOptions) {
    const before = (ensemble.models as CausalLM[]).map((m) => ({ ...m.traffic }));
    let tokens = 0;
    let ensembled = 0;
    for (const p of problemSet(6)) {
      const r = await ensemble.generate(p.question, options);
      tokens += r.stats.generatedTokens;
      ensembled += r.stats.ensembledTokens;
    }
    const traffic: SeamTraffic[] = (ensemble.models as CausalLM[]).map((m, i) => {
      const b = before[i]!;
      const t = m.traffic;
      return { passes: t.passes - b.passes, passBytes: t.passBytes - b.passBytes, reads: t.reads - b.reads, readBytes: t.readBytes - b.readBytes, batchedPasses: t.batchedPasses - b.batchedPasses };
    });
    return { traffic, tokens, ensembled };
  }

  const sum = (ts: SeamTraffic[], f: (t: SeamTraffic) => number) => ts.reduce((s, t) => s + f(t), 0);
  const rowBytes = () => (ensemble.models as CausalLM[]).map((m) => 4 * m.info.vocabSize);

  it('SAFE + UniTE sends no whole row: a few hundred bytes per pass, reads only at ensemble points', async () => {
    const { traffic, tokens, ensembled } = await measure({});
    expect(tokens).toBeGreaterThan(100);
    expect(ensembled).toBeGreaterThan(0);
    // The Qwen verifier's rows are 151,669 floats (607 kB): everything sent stays below one.
    expect(sum(traffic, (t) => t.passBytes + t.readBytes)).toBeLessThan(Math.min(...rowBytes()));
    for (const t of traffic) expect(t.passBytes / t.passes).toBeLessThan(2_000);
    // Reads: fill-in logits at ensemble points, normalizers where the consensus gate looks.
    expect(sum(traffic, (t) => t.readBytes)).toBeLessThan(ensembled * 2 * 4 * 64 + 64 * sum(traffic, (t) => t.reads));
  });

  it('SAFE + GaC reads whole rows only at its ensemble points', async () => {
    const { traffic, ensembled } = await measure({ baseEnsembler: 'gac' });
    const rows = rowBytes();
    expect(ensembled).toBeGreaterThan(0);
    for (const t of traffic) expect(t.passBytes / t.passes).toBeLessThan(2_000);
    const whole = sum(traffic, (t) => t.readBytes);
    expect(whole).toBeGreaterThanOrEqual(ensembled * (rows[0]! + rows[1]!));
    expect(whole).toBeLessThan(ensembled * (rows[0]! + rows[1]!) + 64 * sum(traffic, (t) => t.reads));
  });
});
