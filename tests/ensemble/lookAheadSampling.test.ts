/**
 * Sampling with look-ahead scoring: prefix-related union entries merge into families, the
 * drafter's prefix mass of a family's root is the probability its sampled draft falls into it,
 * and SAFE's acceptance test with the residual rule commits families distributed as P_ens.
 */
import { loadModel, SafeEnsemble, type CausalLM } from '../../src/index';
import type { RowScore } from '../../src/member/scores';
import type { LookAheadModel } from '../../src/ensemble/lookAheadScoring';
import { acceptanceLowerBound, familyDistribution, familyOfDraft, familyRoots, drafterWayInto } from '../../src/ensemble/lookAheadSampling';
import { keptProbability } from '../../src/member/truncation';
import { acceptanceTest, SamplingRandom, Stream } from '../../src/ensemble/sampling';
import { EOS_KEY, Vocabulary } from '../../src/ensemble/vocabulary';
import { bundledModels } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';
import { renderPrompt } from '../../src/ensemble/prompt';
import { encodeResponse } from '../../src/text/continuation';
import { chiSquare } from '../helpers/chiSquare';
import { itOnce } from '../helpers/projects';

const [QWEN, MISTRAL] = bundledModels() as [string, string];

describe('look-ahead families', () => {
  it('a family is a root and every candidate extending it; end-of-sequence is its own', () => {
    expect(familyRoots(['3', '37', '4', '375', ' 3', EOS_KEY, '4'])).toEqual(['3', '4', ' 3', EOS_KEY]);
    expect(familyRoots(['orns', 'orn', 'ore'])).toEqual(['orn', 'ore']);
  });

  it('a draft falls into the root it starts with, is undetermined while it may still become one, and is outside otherwise', () => {
    const roots = [' 62', ' 61', ' 5', EOS_KEY];
    expect(familyOfDraft(roots, ' 62.', false)).toBe(0);
    expect(familyOfDraft(roots, ' 6', false)).toBe('undetermined');
    expect(familyOfDraft(roots, ' 6', true)).toBe(-1); // the draft ended there
    expect(familyOfDraft(roots, ' 7', false)).toBe(-1);
    expect(familyOfDraft(roots, ' 57', false)).toBe(2);
    expect(familyOfDraft(roots, EOS_KEY, true)).toBe(3);
    expect(familyOfDraft([' 5'], EOS_KEY, true)).toBe(-1);
  });
});

describe('look-ahead sampling on the bundled models: the drafter’s draft, the families and the acceptance test', () => {
  let qwen: CausalLM;
  let mistral: CausalLM;
  beforeAll(async () => {
    [qwen, mistral] = await Promise.all([loadModel(QWEN), loadModel(MISTRAL)]);
  });
  afterAll(() => Promise.all([qwen.dispose(), mistral.dispose()]));

  const TEMPERATURE = 1.3;
  const truncation = { temperature: TEMPERATURE, topK: 0, topP: 1 };
  const input = 'Mia has 37 marbles. She finds 25 more. How many does she have now?';
  const written = 'Mia has 37 marbles and finds 25 more, so she has 37 + 25 =';

  /** A member at the point: rows after any path, computed from an empty cache and kept. */
  async function member(lm: CausalLM, weight: number, read = truncation, drafts: typeof truncation | null = null) {
    const prompt = renderPrompt(lm, input, { rawPrompt: false, reserve: 1 });
    const prefix = [...prompt.ids, ...encodeResponse(lm.tokenizer, prompt.context, written).ids];
    const cache = new Map<string, RowScore[]>();
    const rowsAfter = async (path: readonly number[]) => {
      const key = path.join(',');
      if (!cache.has(key)) {
        lm.reset();
        const scores = await lm.score([...prefix, ...path], { rows: path.length + 1, topK: 10, holdFrom: 0, full: true });
        const rows = Array.from({ length: path.length + 1 }, (_, i) => scores.at(i));
        await Promise.all(rows.map((r) => r.row()));
        cache.set(key, rows);
      }
      return cache.get(key)!;
    };
    const vocab = Vocabulary.of(lm.tokenizer);
    const row = (await rowsAfter([]))[0]!;
    const model: LookAheadModel = {
      vocab,
      weight,
      context: written,
      dummySpace: false,
      row,
      wholeRows: true,
      atHand: () => false,
      rowsAfter: async (path) => ({ rows: (await rowsAfter(path)).slice(1), ran: true }),
      kept: (r) => r.truncated(read),
      ...(drafts ? { draftKept: (r: RowScore) => r.truncated(drafts) } : {}),
    };
    return { model, vocab, rowsAfter };
  }

  /** The drafter samples token by token (its rows, read at `read`) until its text's family among `roots` is known (at most 4 tokens). */
  async function draftIntoFamily(drafter: Awaited<ReturnType<typeof member>>, roots: readonly string[], read: typeof truncation, random: SamplingRandom, i: number) {
    const path: number[] = [];
    let found: number | 'undetermined' = 'undetermined';
    for (let step = 0; found === 'undetermined' && step < 4; step++) {
      const rows = await drafter.rowsAfter(path);
      const next = await rows[path.length]!.draw(read, random.uniform(Stream.Draft, i, step));
      path.push(next.id);
      const eos = drafter.vocab.isEos(next.id);
      const text = eos && path.length === 1 ? EOS_KEY : path.filter((id) => !drafter.vocab.isEos(id)).map((id) => drafter.vocab.key(id)).join('');
      found = familyOfDraft(roots, text, eos);
    }
    return { path, found };
  }

  it('committed families follow P_ens over families (chi-square, 4,000 draws, 0.1% level), drafts extended by the drafter where they end inside a root', async () => {
    const drafter = await member(qwen, 0.5);
    const verifier = await member(mistral, 0.5);
    // Qwen writes " 62" as " ", "6", "2": a draft of " " or " 6" is still undetermined.
    const candidates = [' 62', ' 61', ' 6', ' 5', ' 7', '62'];
    const family = (await familyDistribution([drafter.model, verifier.model], candidates))!;
    expect(family.roots).toEqual([' 6', ' 5', ' 7', '62']);
    const narrow = (await familyDistribution([drafter.model, verifier.model], [' 62', ' 61', ' 5']))!;
    expect(narrow.roots).toEqual([' 62', ' 61', ' 5']);
    for (const f of [family, narrow]) {
      expect(f.p.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 12);
      // The drafter's probability of each family is its prefix mass: at most 1 in all.
      expect(f.q.reduce((s, x) => s + x, 0)).toBeLessThanOrEqual(1 + 1e-9);
    }

    // The drafter samples token by token (its tempered rows) until its text's family is known.
    const random = new SamplingRandom(5);
    const N = 4000;
    const counts = new Map<string, number>();
    const draftFamilies = new Map<string, number>();
    let extended = 0;
    for (let i = 0; i < N; i++) {
      const { path, found } = await draftIntoFamily(drafter, narrow.roots, truncation, random, i);
      if (path.length > 1) extended++;
      const drafted = typeof found === 'number' ? found : -1;
      draftFamilies.set(String(drafted), (draftFamilies.get(String(drafted)) ?? 0) + 1);
      const outcome = acceptanceTest(narrow.p, narrow.q, drafted, drafted >= 0 ? narrow.q[drafted]! : 1, 'residual', random.uniform(Stream.Accept, i, 0), random.uniform(Stream.Rejection, i, 0));
      const committed = outcome.accepted ? drafted : outcome.drawn!.entry;
      counts.set(String(committed), (counts.get(String(committed)) ?? 0) + 1);
    }
    expect(extended).toBe(N); // every draft of Qwen's " " needs its next tokens
    // The drafter's drafts fall into the families as its prefix masses say…
    const qOutside = 1 - narrow.q.reduce((s, x) => s + x, 0);
    const qExpected = new Map([...narrow.q].map((x, r) => [String(r), x] as [string, number]).concat([['-1', qOutside]]));
    const draftTest = chiSquare(draftFamilies, qExpected);
    expect(draftTest.statistic).toBeLessThan(draftTest.critical);
    // …and the committed families follow P_ens.
    expect(counts.has('-1')).toBe(false);
    const test = chiSquare(counts, new Map([...narrow.p].map((x, r) => [String(r), x])));
    expect(test.statistic).toBeLessThan(test.critical);
  });

  it('the acceptance bound from the best tokens never exceeds min(1, P_ens / q) of the full scoring', async () => {
    const drafter = await member(qwen, 0.5);
    const verifier = await member(mistral, 0.5);
    let positive = 0;
    for (const candidates of [[' 6', ' 5', ' 7', '62'], [' 62', ' 61', ' 5'], [' 6', ' 5'], [' ', ' 6'], ['6', ' 6', '.']]) {
      const family = (await familyDistribution([drafter.model, verifier.model], candidates))!;
      const views = await Promise.all([drafter.model, verifier.model].map(async (m) => {
        const top = m.row.top(10);
        const kept = await m.kept!(m.row);
        return { model: m, ids: top.ids, probabilities: Array.from(top.ids, (id, i) => keptProbability(kept, id, top.logits[i]!)) };
      }));
      for (let r = 0; r < family.roots.length; r++) {
        const bound = acceptanceLowerBound(views, family.roots, r);
        const exact = family.q[r]! > 0 ? Math.min(1, family.p[r]! / family.q[r]!) : 1;
        expect(bound).toBeLessThanOrEqual(exact);
        if (bound > 0) positive++;
      }
    }
    expect(positive).toBeGreaterThan(0);
  });

  describe("pooled otherwise: temperature after the pool (temperatureAt: 'ensemble'), the geometric mean (sharpening 'geometric')", () => {
    const atOne = { ...truncation, temperature: 1 };
    const cases: Array<{ temperature: number; geometric: boolean }> = [
      { temperature: 0.7, geometric: false },
      { temperature: 1.3, geometric: false },
      { temperature: 0.7, geometric: true },
      { temperature: 1, geometric: true },
    ];
    for (const { temperature, geometric } of cases) {
      const atT = { ...truncation, temperature };
      // temperatureAt 'ensemble' reads the models at temperature 1 and the drafter's draft at T.
      const reads = temperature === 1 ? atT : atOne;
      const pool = { exponent: 1 / temperature, geometricBelow: geometric ? 1 : null };
      const label = `${geometric ? 'geometric' : 'mean'}, T = ${temperature}`;
      itOnce(`${label}: P_ens is the pool by hand, q the drafter's draft masses, committed families follow P_ens (chi-square, 3,000 draws)`, async () => {
        const drafter = await member(qwen, 0.5, reads, reads === atT ? null : atT);
        const verifier = await member(mistral, 0.5, reads);
        const candidates = [' 62', ' 61', ' 5', ' 7'];
        const family = (await familyDistribution([drafter.model, verifier.model], candidates, pool))!;
        expect(family.geometric).toBe(geometric);
        // P_ens from the shares read at temperature 1, by hand.
        const plain = (await familyDistribution([drafter.model, verifier.model], candidates))!;
        const [a, b] = plain.perModel;
        const pooled = [...plain.p].map((x, r) => (geometric ? Math.sqrt(a![r]! * b![r]!) : x) ** (1 / temperature));
        const sum = pooled.reduce((x, y) => x + y, 0);
        family.p.forEach((x, r) => expect(x).toBeCloseTo(pooled[r]! / sum, 12));
        // q: the drafter's prefix masses as it drafts (at T).
        const drafting = (await familyDistribution([(await member(qwen, 0.5, atT)).model, verifier.model], candidates))!;
        family.q.forEach((x, r) => expect(x).toBeCloseTo(drafting.q[r]!, 12));
        if (reads !== atT) expect(Math.max(...[...family.q].map((x, r) => Math.abs(x - plain.scored.masses[0]![r]!)))).toBeGreaterThan(1e-3);

        const random = new SamplingRandom(11);
        const N = 3000;
        const counts = new Map<string, number>();
        for (let i = 0; i < N; i++) {
          const { found } = await draftIntoFamily(drafter, family.roots, atT, random, i);
          const drafted = typeof found === 'number' ? found : -1;
          const outcome = acceptanceTest(family.p, family.q, drafted, drafted >= 0 ? family.q[drafted]! : 1, 'residual', random.uniform(Stream.Accept, i, 0), random.uniform(Stream.Rejection, i, 0));
          const committed = outcome.accepted ? drafted : outcome.drawn!.entry;
          counts.set(String(committed), (counts.get(String(committed)) ?? 0) + 1);
        }
        const test = chiSquare(counts, new Map([...family.p].map((x, r) => [String(r), x])));
        expect(test.statistic).toBeLessThan(test.critical);
      });

      it(`${label}: the acceptance bound stays below min(1, P_ens / q)`, async () => {
        const drafter = await member(qwen, 0.5, reads, reads === atT ? null : atT);
        const verifier = await member(mistral, 0.5, reads);
        const view = async (m: LookAheadModel, keptOf: NonNullable<LookAheadModel['kept']>) => {
          const top = m.row.top(10);
          const kept = await keptOf(m.row);
          return { model: m, ids: top.ids, probabilities: Array.from(top.ids, (id, i) => keptProbability(kept, id, top.logits[i]!)) };
        };
        let positive = 0;
        for (const candidates of [[' 6', ' 5', ' 7', '62'], [' 62', ' 61', ' 5'], [' 6', ' 5'], [' ', ' 6'], ['6', ' 6', '.']]) {
          const family = (await familyDistribution([drafter.model, verifier.model], candidates, pool))!;
          const views = await Promise.all([drafter.model, verifier.model].map((m) => view(m, m.kept!)));
          const drafterView = await view(drafter.model, drafter.model.draftKept ?? drafter.model.kept!);
          for (let r = 0; r < family.roots.length; r++) {
            const bound = acceptanceLowerBound(views, family.roots, r, pool, drafterView);
            const exact = family.q[r]! > 0 ? Math.min(1, family.p[r]! / family.q[r]!) : 1;
            expect(bound).toBeLessThanOrEqual(exact);
            if (bound > 0) positive++;
          }
        }
        expect(positive).toBeGreaterThan(0);
      });
    }
  });

  it('after a rejection the drafter writes into the drawn family with one of its own tokens starting it', async () => {
    const drafter = await member(qwen, 0.5);
    const verifier = await member(mistral, 0.5);
    const family = (await familyDistribution([drafter.model, verifier.model], [' 62', ' 61', ' 5']))!;
    for (const [r, root] of family.roots.entries()) {
      const ids = drafterWayInto(family, r, 0.5);
      expect(ids.length).toBeGreaterThan(0);
      expect(ids.map((id) => drafter.vocab.key(id)).join('').startsWith(root)).toBe(true);
    }
  });
});

describe('look-ahead sampling through the engine', () => {
  let ensemble: SafeEnsemble;
  beforeAll(async () => {
    ensemble = await SafeEnsemble.load({ models: bundledModels() });
  });
  afterAll(() => ensemble.dispose());

  const question = problemSet(3)[2]!.question;
  const options = { temperature: 0.7, seed: 3, unionScoring: 'look-ahead' as const, maxNewTokens: 48, trace: true };

  it('samples families: every tested point is traced with P_ens and the drafter’s family probabilities; seeded runs repeat; caches equal recomputation', async () => {
    const a = await ensemble.generate(question, options);
    const b = await ensemble.generate(question, options);
    const c = await ensemble.generate(question, { ...options, recomputeCaches: true });
    expect(b.text).toBe(a.text);
    expect(c.text).toBe(a.text);
    const { sampling, lookAhead } = a.stats;
    expect(sampling!.tested).toBeGreaterThan(0);
    expect(lookAhead!.points).toBe(sampling!.tested);
    expect(a.trace!.length).toBe(sampling!.tested);
    let bounded = 0;
    for (const t of a.trace!) {
      const total = t.candidates.reduce((s, x) => s + x.probability!, 0);
      expect(total).toBeLessThanOrEqual(1 + 1e-9);
      expect(t.acceptance).toBeDefined();
      expect(t.lookAhead!.passes).toBeGreaterThanOrEqual(0);
      if (t.acceptance!.bounded) {
        // Settled by the bound: accepted, its uniform below the bound.
        bounded++;
        expect(t.acceptance!.accepted).toBe(true);
        expect(t.acceptance!.uniform).toBeLessThan(t.acceptance!.acceptProbability);
        continue;
      }
      expect(t.candidates.every((x) => x.draftProbability! >= 0 && x.draftProbability! <= 1 + 1e-9)).toBe(true);
      expect(t.acceptance!.acceptProbability).toBeCloseTo(Math.min(1, t.acceptance!.ensembleProbability / t.acceptance!.draftProbability), 12);
    }
    expect(bounded).toBe(lookAhead!.bounded);
    // Most points are settled by the bound; some are not.
    expect(bounded).toBeGreaterThan(0);
    expect(bounded).toBeLessThan(a.trace!.length);
    // The default (unionScoring 'auto') samples by look-ahead: the same text, trace and stats.
    const auto = await ensemble.generate(question, { ...options, unionScoring: undefined });
    expect(auto.text).toBe(a.text);
    expect(auto.stats.lookAhead).toEqual(a.stats.lookAhead);
    expect(auto.trace!.length).toBe(a.trace!.length);
    // First-token scoring samples another distribution: the same seed need not give the same text, and its stats carry no look-ahead.
    const first = await ensemble.generate(question, { ...options, unionScoring: 'first-token' });
    expect(first.stats.lookAhead).toBeUndefined();
  });
  it.each([
    ['greedy', { unionScoring: 'look-ahead' as const, maxNewTokens: 48 }],
    ['sampled (families pooled by product)', { ...options, trace: false }],
    ['sampled (families averaged)', { ...options, trace: false, familyPool: 'mean' as const }],
  ])('%s look-ahead: a stream left by abort, timeout, break, a throw or a half-read iterator leaves the next call unchanged', async (_, o) => {
    const before = await ensemble.generate(question, o);
    const controller = new AbortController();
    for await (const chunk of ensemble.stream(question, { ...o, signal: controller.signal })) if (chunk.type === 'text') controller.abort();
    for await (const chunk of ensemble.stream(question, { ...o, signal: AbortSignal.timeout(1) })) void chunk;
    for await (const chunk of ensemble.stream(question, o)) if (chunk.type === 'text') break;
    await expect(
      (async () => {
        for await (const chunk of ensemble.stream(question, o)) if (chunk.type === 'text') throw new Error('consumer failed');
      })(),
    ).rejects.toThrow('consumer failed');
    const halfRead = ensemble.stream(question, o);
    await halfRead.next();
    const after = await ensemble.generate(question, o);
    expect(after.text).toBe(before.text);
    expect(after.stats.lookAhead).toEqual(before.stats.lookAhead);
  });
});
