/**
 * Sampling: the acceptance test and its rejection rules (exactness shown statistically, on the
 * pure function and through the whole engine on scripted models), reproducibility by seed,
 * temperature 0 as greedy, and every strategy.
 */
import { InvalidArgumentError, loadModel, SafeEnsemble, type CausalLM, type EnsembleOptions, type EnsembleResult } from '../../src/index';
import { itOnce } from '../helpers/projects';
import { renderPromptWith } from '../../src/ensemble/prompt';
import { acceptanceTest, ensembleProbabilities, SamplingRandom, Stream } from '../../src/ensemble/sampling';
import type { EnsembleDecision } from '../../src/ensemble/aggregate';
import { fixtureModel } from '../helpers/fixtures';
import { scriptedModel } from '../helpers/scripted';
import { chiSquare } from '../helpers/chiSquare';
import { comparable } from '../helpers/results';

const PROMPT = 'Q: Is the sky green?\nA:';
// First-token sampling (the paper's union); look-ahead families: lookAheadSampling.test.ts.
const RAW: EnsembleOptions = { rawPrompt: true, unionScoring: 'first-token' };

/** Normalizes non-negative weights. */
const normalize = (w: number[]) => {
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
};

describe('the acceptance test (pure function)', () => {
  // Union entries 0..4; the drafter also puts mass on strings outside the union (index 5).
  const p = normalize([0.3, 0.05, 0.25, 0.15, 0.25]);
  const qFull = normalize([0.6, 0.2, 0.02, 0.05, 0.03, 0.1]);
  const q = Float64Array.from(qFull.slice(0, 5));
  const N = 200_000;

  function committed(rule: 'residual' | 'ensemble'): Map<string, number> {
    const random = new SamplingRandom(11);
    const counts = new Map<string, number>();
    for (let i = 0; i < N; i++) {
      // The drafter's token: entry e with probability qFull[e] (5 = outside the union).
      let u = random.uniform(Stream.Draft, 0, i);
      let t = 0;
      while (t < qFull.length - 1 && u >= qFull[t]!) u -= qFull[t++]!;
      const drafted = t < 5 ? t : -1;
      const outcome = acceptanceTest(Float64Array.from(p), q, drafted, qFull[t]!, rule, random.uniform(Stream.Accept, 0, i), random.uniform(Stream.Rejection, 0, i));
      const key = String(outcome.accepted ? drafted : outcome.drawn!.entry);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  const target = new Map(p.map((x, e) => [String(e), x]));
  // The paper's rule: min(p, q) + (1 − Σ min(p, q)) · p.
  const beta = p.reduce((s, x, e) => s + Math.min(x, q[e]!), 0);
  const paper = new Map(p.map((x, e) => [String(e), Math.min(x, q[e]!) + (1 - beta) * x]));

  it('residual rule: the committed entry is distributed as P_ens (chi-square, 200,000 draws, 0.1% level)', () => {
    const counts = committed('residual');
    expect(counts.has('-1')).toBe(false); // a string outside the union is never committed
    const test = chiSquare(counts, target, paper);
    // Power: against the paper's rule the noncentrality is in the thousands, so a sampler
    // with its bias would exceed the critical value with probability ≈ 1.
    expect(test.noncentrality).toBeGreaterThan(1000);
    expect(test.statistic).toBeLessThan(test.critical);
  });

  it("paper's rule (draw from P_ens after a rejection): biased toward the drafter's favourites, as min(p,q) + (1−β)p predicts", () => {
    const counts = committed('ensemble');
    expect(chiSquare(counts, target).statistic).toBeGreaterThan(1000); // far from P_ens
    expect(chiSquare(counts, paper).statistic).toBeLessThan(chiSquare(counts, paper).critical); // where the math says
    // Entry 0 (q 0.6 > p 0.3) gains, entry 2 (q 0.02 < p 0.25) loses.
    expect(counts.get('0')! / N).toBeGreaterThan(p[0]! + 0.05);
    expect(counts.get('2')! / N).toBeLessThan(p[2]! - 0.05);
  });

  it('accepts with probability min(1, p/q): a token the ensemble likes more than the drafter always stands', () => {
    const always = acceptanceTest(Float64Array.from([0.9, 0.1]), Float64Array.from([0.5, 0.5]), 0, 0.5, 'residual', 0.99999, 0.5);
    expect(always).toMatchObject({ accepted: true, acceptProbability: 1 });
    const outside = acceptanceTest(Float64Array.from([0.9, 0.1]), Float64Array.from([0.5, 0.5]), -1, 0.2, 'residual', 0, 0.5);
    expect(outside.accepted).toBe(false);
    expect(outside.acceptProbability).toBe(0);
  });

  it('sharpened decisions: the distribution drawn from is the sharpened scores normalised, without bare spaces', () => {
    const decision = { keys: [' ', ' Sof', ' Sofia'], average: Float64Array.from([0.45, 0.3, 0.25]), scores: Float64Array.from([0.45, 0.55, 0.25]), perModel: [], sharpened: true, winner: 1, bareSpaceGaveWay: null } as unknown as EnsembleDecision;
    expect([...ensembleProbabilities(decision)]).toEqual([0, 0.55 / 0.8, 0.25 / 0.8]);
    const plain = { ...decision, scores: decision.average, sharpened: false } as EnsembleDecision;
    expect([...ensembleProbabilities(plain)].map((x) => x.toFixed(6))).toEqual(['0.450000', '0.300000', '0.250000']);
  });

  it('the random numbers are counter-based: the same (seed, stream, cycle, index) gives the same number, others differ', () => {
    const a = new SamplingRandom(5);
    expect(a.uniform(Stream.Draft, 3, 7)).toBe(new SamplingRandom(5).uniform(Stream.Draft, 3, 7));
    const seen = new Set([a.uniform(Stream.Draft, 3, 7), a.uniform(Stream.Accept, 3, 7), a.uniform(Stream.Draft, 4, 7), a.uniform(Stream.Draft, 3, 8), new SamplingRandom(6).uniform(Stream.Draft, 3, 7)]);
    expect(seen.size).toBe(5);
    let sum = 0;
    for (let i = 0; i < 10_000; i++) sum += a.uniform(Stream.Ensemble, 0, i);
    expect(sum / 10_000).toBeCloseTo(0.5, 1);
  });
});

/** The tempered, top-k-cut distribution of a whole row, as a map id → probability (the slow way). */
function keptDistribution(row: Float32Array, temperature: number, k: number): Map<number, number> {
  const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
  const max = row[order[0]!]! / temperature;
  const w = order.map((id) => Math.exp(row[id]! / temperature - max));
  const s = w.reduce((a, b) => a + b, 0);
  return new Map(order.map((id, i) => [id, w[i]! / s]));
}

describe('SAFE sampling through the engine: one stable position with known distributions (scripted Qwen-tokenizer pair)', () => {
  let drafter: CausalLM;
  let verifier: CausalLM;
  let ensemble: SafeEnsemble;
  // Temperature 4 and top-k 3 flatten each member to its scripted token (~0.8) and two
  // background tokens, so several entries carry mass. No sharpening, so P_ens is the plain
  // weighted mean (sharpening's own rule is tested above).
  const T = 4;
  const K = 3;
  const OPTIONS: EnsembleOptions = { ...RAW, temperature: T, topK: K, maxNewTokens: 1, draftLength: 1, sharpening: { method: 'none' }, weights: [0.45, 0.55], trace: true };
  let pEns: Map<string, number>;
  let paper: Map<string, number>;
  let rows: Float32Array[];

  beforeAll(async () => {
    drafter = await loadModel(await scriptedModel({ tokenizer: 'qwen3', scripts: [{ prompt: PROMPT, completion: ' Yes', rawPrompt: true }], confidence: 0.6, seed: 1 }));
    verifier = await loadModel(await scriptedModel({ tokenizer: 'qwen3', scripts: [{ prompt: PROMPT, completion: ' No', rawPrompt: true }], confidence: 0.6, seed: 2 }));
    // The expected distribution, computed from the models' own whole rows outside the engine.
    rows = [];
    for (const m of [drafter, verifier]) {
      const ids = renderPromptWith(m.tokenizer, PROMPT, { rawPrompt: true }).ids;
      m.reset();
      rows.push(Float32Array.from((await m.forward(ids, { logits: 'last' })).row(0)));
      m.reset();
    }
    const [q, v] = rows.map((row) => keptDistribution(row, T, K)) as [Map<number, number>, Map<number, number>];
    // Both use one tokenizer: the union is the ids of both top-3s, and a member's probability of
    // an entry it cut is 0, so each member's distribution over the union is its own.
    const union = new Set([...q.keys(), ...v.keys()]);
    pEns = new Map([...union].map((id) => [String(id), 0.45 * (q.get(id) ?? 0) + 0.55 * (v.get(id) ?? 0)]));
    const beta = [...union].reduce((s, id) => s + Math.min(pEns.get(String(id))!, q.get(id) ?? 0), 0);
    paper = new Map([...union].map((id) => [String(id), Math.min(pEns.get(String(id))!, q.get(id) ?? 0) + (1 - beta) * pEns.get(String(id))!]));
    ensemble = new SafeEnsemble([drafter, verifier]);
  });
  afterAll(() => ensemble.dispose());

  const N = 1500;
  async function firstTokens(rule: 'residual' | 'ensemble'): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (let seed = 1; seed <= N; seed++) {
      const r = await ensemble.generate(PROMPT, { ...OPTIONS, seed, rejectionRule: rule });
      expect(r.stats.sampling!.tested).toBe(1);
      const record = r.trace![0]!;
      expect(record.acceptance).toBeDefined();
      const id = String(record.winner.ids[0]);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  itOnce('the committed token follows P_ens (chi-square at 0.1%, 1,500 seeded generations; power shown against the paper rule)', async () => {
    expect(Math.max(...pEns.values())).toBeLessThan(0.6); // a contested position, not a formality
    const counts = await firstTokens('residual');
    const test = chiSquare(counts, pEns, paper);
    // Noncentrality above 60 at ≤ 5 degrees of freedom: a sampler with the paper's bias fails
    // this test with probability > 0.999.
    expect(test.noncentrality).toBeGreaterThan(60);
    expect(test.statistic).toBeLessThan(test.critical);
  }, 300_000);

  itOnce("temperatureAt: 'ensemble': the committed token follows the members' average at temperature 1, tempered after (chi-square at 0.1%)", async () => {
    // Members cut to their top 3 at temperature 1, averaged, then raised to 1/T and renormalized;
    // the drafter still drafts at T (its q is the tempered row), so the test compares with
    // another q than the target's members use.
    const [q1, v1] = rows.map((row) => keptDistribution(row, 1, K)) as [Map<number, number>, Map<number, number>];
    const union = new Set([...q1.keys(), ...v1.keys()]);
    const raw = [...union].map((id) => [String(id), (0.45 * (q1.get(id) ?? 0) + 0.55 * (v1.get(id) ?? 0)) ** (1 / T)] as const);
    const total = raw.reduce((sum, [, x]) => sum + x, 0);
    const tempered = new Map(raw.map(([id, x]) => [id, x / total]));
    const counts = new Map<string, number>();
    for (let seed = 1; seed <= N; seed++) {
      const r = await ensemble.generate(PROMPT, { ...OPTIONS, seed, temperatureAt: 'ensemble' });
      expect(r.stats.sampling!.tested).toBe(1);
      const probabilities = r.trace![0]!.candidates.map((c) => c.probability!);
      expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
      const id = String(r.trace![0]!.winner.ids[0]);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // The draws follow the tempered-after distribution; it differs from the tempered-before one
    // (noncentrality 6.6 at 1,500 draws: a modest power against it, checked so it stays apart).
    const test = chiSquare(counts, tempered, pEns);
    expect(test.noncentrality).toBeGreaterThan(5);
    expect(test.statistic).toBeLessThan(test.critical);
  }, 300_000);

  itOnce("the paper's rule over-commits the drafter's token, as min(p,q) + (1−β)p predicts", async () => {
    const counts = await firstTokens('ensemble');
    const drafted = [...counts.keys()].reduce((a, b) => ((paper.get(a) ?? 0) - (pEns.get(a) ?? 0) > (paper.get(b) ?? 0) - (pEns.get(b) ?? 0) ? a : b));
    const share = (counts.get(drafted) ?? 0) / N;
    const sd = Math.sqrt((pEns.get(drafted)! * (1 - pEns.get(drafted)!)) / N);
    expect(share).toBeGreaterThan(pEns.get(drafted)! + 5 * sd);
    expect(chiSquare(counts, pEns).statistic).toBeGreaterThan(chiSquare(counts, pEns).critical);
    const fit = chiSquare(counts, paper);
    expect(fit.statistic).toBeLessThan(fit.critical);
  }, 300_000);
});

describe('sampling on random tiny decoders (Qwen3 and Mistral tokenizers)', () => {
  let ensemble: SafeEnsemble;
  const QUESTION = 'Q: Mia has 37 marbles. She finds 25 more. How many does she have?\nA:';
  beforeAll(async () => {
    const qwen = await loadModel(fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 5, logitScale: 2 }));
    const mistral = await loadModel(fixtureModel({ tokenizer: 'llama2', seed: 6, logitScale: 2 }));
    ensemble = new SafeEnsemble([qwen, mistral]);
  });
  afterAll(() => ensemble.dispose());

  const same = (a: EnsembleResult, b: EnsembleResult) => expect(comparable(a)).toEqual(comparable(b));

  it('temperature 0 is greedy bit for bit, whatever topP, topK, seed and rule say', async () => {
    for (const strategy of ['safe', 'single', 'every-token', 'gac-threshold'] as const) {
      const greedy = await ensemble.generate(QUESTION, { ...RAW, strategy, maxNewTokens: 30 });
      same(await ensemble.generate(QUESTION, { ...RAW, strategy, maxNewTokens: 30, temperature: 0, topP: 0.5, topK: 3, seed: 9, rejectionRule: 'ensemble' }), greedy);
      expect(greedy.stats.sampling).toBeUndefined();
    }
  });

  it.each(['safe', 'single', 'every-token', 'gac-threshold'] as const)('%s: the same seed gives the same text and statistics; other seeds give other texts', async (strategy) => {
    const options: EnsembleOptions = { ...RAW, strategy, temperature: 1.2, topP: 0.95, maxNewTokens: 30 };
    const a = await ensemble.generate(QUESTION, { ...options, seed: 1 });
    same(await ensemble.generate(QUESTION, { ...options, seed: 1 }), a);
    expect(a.stats.sampling!.seed).toBe(1);
    const others = new Set<string>([a.text]);
    for (let seed = 2; seed <= 4; seed++) others.add((await ensemble.generate(QUESTION, { ...options, seed })).text);
    expect(others.size).toBeGreaterThan(2);
  });

  it('without a seed each call draws a fresh one, reported so that the call can be repeated', async () => {
    const options: EnsembleOptions = { ...RAW, temperature: 1, maxNewTokens: 20 };
    const a = await ensemble.generate(QUESTION, options);
    const b = await ensemble.generate(QUESTION, options);
    expect(a.stats.sampling!.seed).not.toBe(b.stats.sampling!.seed);
    same(await ensemble.generate(QUESTION, { ...options, seed: a.stats.sampling!.seed }), a);
  });

  it('SAFE: every stable position is tested; tested = accepted + rejected = ensembled tokens; the trace shows each draw', async () => {
    const r = await ensemble.generate(QUESTION, { ...RAW, temperature: 1, seed: 3, maxNewTokens: 40, trace: true });
    const s = r.stats.sampling!;
    expect(s.tested).toBe(s.accepted + s.rejected);
    expect(r.stats.ensembledTokens).toBe(s.tested);
    expect(s.rejected).toBeGreaterThan(0);
    expect(r.trace!.length).toBe(s.tested);
    for (const t of r.trace!) {
      const a = t.acceptance!;
      expect(a.accepted).toBe(a.uniform < a.acceptProbability);
      expect(a.acceptProbability).toBeCloseTo(Math.min(1, a.ensembleProbability / a.draftProbability), 12);
      if (a.accepted) expect(t.draw).toBeUndefined();
      else {
        expect(t.draw!.from).toBe('residual');
        // The residual never draws the rejected token, nor an entry the drafter likes more than the ensemble does.
        const winner = t.candidates.find((c) => c.text === t.winner.text);
        if (winner) expect(winner.probability!).toBeGreaterThan(winner.draftProbability!);
      }
      const total = t.candidates.reduce((sum, c) => sum + c.probability!, 0);
      expect(total).toBeLessThanOrEqual(1 + 1e-9);
    }
  });

  it('the coldest temperature (1e-5) samples with correct statistics in every strategy; colder is a typed error naming the floor', async () => {
    const greedySingle = await ensemble.generate(QUESTION, { ...RAW, strategy: 'single', maxNewTokens: 30 });
    for (const strategy of ['safe', 'single', 'every-token', 'gac-threshold'] as const) {
      const r = await ensemble.generate(QUESTION, { ...RAW, strategy, temperature: 1e-5, seed: 2, maxNewTokens: 30, trace: strategy === 'safe' });
      expect(r.stats.generatedTokens).toBeGreaterThan(0);
      const s = r.stats.sampling!;
      expect(s.tested).toBe(s.accepted + s.rejected);
      if (strategy === 'single') expect(r.text).toBe(greedySingle.text); // one-hot at the drafter's argmax
      for (const t of r.trace ?? []) {
        const a = t.acceptance!;
        expect(a.acceptProbability).toBeGreaterThanOrEqual(0);
        expect(a.acceptProbability).toBeLessThanOrEqual(1);
        expect(a.accepted).toBe(a.uniform < a.acceptProbability);
      }
    }
    for (const temperature of [1e-6, 1e-40, 1e-307, Number.MIN_VALUE]) {
      const error = (await ensemble.generate(QUESTION, { ...RAW, temperature }).catch((e: unknown) => e)) as InvalidArgumentError;
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error.field).toBe('temperature');
      expect(error.message).toMatch(/from 1e-5 to 100.*pass 0/);
    }
  });

  it('single with topK 1 at any temperature is the greedy drafter, and never leaves the kept set', async () => {
    const greedy = await ensemble.generate(QUESTION, { ...RAW, strategy: 'single', maxNewTokens: 30 });
    const cut = await ensemble.generate(QUESTION, { ...RAW, strategy: 'single', maxNewTokens: 30, temperature: 5, topK: 1, seed: 4 });
    expect(cut.text).toBe(greedy.text);
    // SAFE with topK 1 everywhere: every member is one-hot; the committed tokens are some member's argmax.
    const safe = await ensemble.generate(QUESTION, { ...RAW, maxNewTokens: 30, temperature: 5, topK: 1, seed: 4, trace: true });
    for (const t of safe.trace!) expect(t.candidates.filter((c) => c.probability! > 0).map((c) => c.text)).toContain(t.winner.text);
  });

  itOnce('members in worker threads (drafting ahead while verifying) sample exactly what inline members sample', async () => {
    const load = (execution: 'inline' | 'worker') =>
      Promise.all([loadModel(fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 5, logitScale: 2 }), { execution }), loadModel(fixtureModel({ tokenizer: 'llama2', seed: 6, logitScale: 2 }), { execution })]);
    const inline = new SafeEnsemble(await load('inline'));
    const worker = new SafeEnsemble(await load('worker'));
    try {
      for (const seed of [1, 2]) {
        for (const rejectionRule of ['residual', 'ensemble'] as const) {
          const options: EnsembleOptions = { ...RAW, temperature: 1, topP: 0.9, seed, rejectionRule, maxNewTokens: 40, trace: true };
          const a = await inline.generate(QUESTION, options);
          const b = await worker.generate(QUESTION, options);
          expect(b.stats.pipeline).toBeDefined();
          expect(comparable(b)).toEqual(comparable(a));
        }
      }
    } finally {
      await inline.dispose();
      await worker.dispose();
    }
  });

  it('a sampled stream left by abort, timeout, break, a throw or a half-read iterator frees the models; the next seeded call is unchanged', async () => {
    const options: EnsembleOptions = { ...RAW, temperature: 1, topP: 0.9, seed: 21, maxNewTokens: 40 };
    const before = await ensemble.generate(QUESTION, options);
    const controller = new AbortController();
    for await (const chunk of ensemble.stream(QUESTION, { ...options, signal: controller.signal })) if (chunk.type === 'text') controller.abort();
    for await (const chunk of ensemble.stream(QUESTION, { ...options, signal: AbortSignal.timeout(1) })) void chunk;
    for await (const chunk of ensemble.stream(QUESTION, options)) if (chunk.type === 'text') break;
    await expect(
      (async () => {
        for await (const chunk of ensemble.stream(QUESTION, options)) if (chunk.type === 'text') throw new Error('consumer failed');
      })(),
    ).rejects.toThrow('consumer failed');
    const halfRead = ensemble.stream(QUESTION, options);
    await halfRead.next();
    same(await ensemble.generate(QUESTION, options), before);
  });

  it('sampling with GaC as the base ensembler (whole rows, tempered and cut) is reproducible', async () => {
    const options: EnsembleOptions = { ...RAW, baseEnsembler: 'gac', temperature: 0.9, topK: 20, seed: 8, maxNewTokens: 25, trace: true };
    const a = await ensemble.generate(QUESTION, options);
    same(await ensemble.generate(QUESTION, options), a);
    expect(a.stats.sampling!.tested).toBeGreaterThan(0);
  });
});
