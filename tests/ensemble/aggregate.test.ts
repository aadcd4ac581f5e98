import { consensusSkip, decide, EOS_KEY, GacUnion, topKeys, uniteDistribution, Vocabulary, type ModelView } from '../../src/research';
import { rowWith } from '../helpers/logits';
import { realTokenizer } from '../helpers/tokenizers';


const SHARP = { method: 'heuristic' as const, below: 0.5, lambda: 0.1 };

describe('UniTE, GaC and sharpening on hand-made distributions', () => {
  let qwen: Vocabulary;
  let mistral: Vocabulary;
  beforeAll(async () => {
    qwen = Vocabulary.of(await realTokenizer('qwen3'));
    mistral = Vocabulary.of(await realTokenizer('llama2'));
  });

  function views(q: Record<string, number>, m: Record<string, number>, context = 'The capital is'): ModelView[] {
    return [
      { vocab: qwen, row: rowWith(qwen, q), weight: 0.5, context },
      { vocab: mistral, row: rowWith(mistral, m), weight: 0.5, context },
    ];
  }

  const sofia = () => views({ 'ĠSof': 0.2, 'ĠSofia': 0.18, 'ĠParis': 0.35, 'ĠBerlin': 0.27 }, { '▁Sof': 0.4, '▁Paris': 0.35, '▁Berlin': 0.25 });

  it('unites top-k strings across vocabularies and never counts a sub-token twice', () => {
    const dist = uniteDistribution(sofia(), 10);
    const at = (s: string) => dist.keys.indexOf(s);
    expect(at(' Sof')).toBeGreaterThanOrEqual(0);
    expect(at(' Sofia')).toBeGreaterThanOrEqual(0);
    // Mistral writes " Sofia" as ▁Sof|ia: its first sub-token is already " Sof"'s, so it gets no mass.
    expect(dist.perModel[1]![at(' Sofia')]).toBe(0);
    expect(dist.perModel[1]![at(' Sof')]).toBeCloseTo(0.4, 5);
    expect(dist.average[at(' Sof')]).toBeCloseTo(0.3, 5);
    expect(dist.average[at(' Paris')]).toBeCloseTo(0.35, 5);
    let total = 0;
    for (const p of dist.perModel[0]!) total += p;
    expect(total).toBeCloseTo(1, 6);
  });

  it('heuristic sharpening gathers " Sofia" onto " Sof"; without it " Paris" wins', () => {
    const v = sofia();
    const dist = uniteDistribution(v, 10);
    const drafterTop = topKeys(qwen, v[0]!.row, 10);
    const plain = decide(dist, drafterTop, [0.5, 0.5], { ...SHARP, method: 'none' });
    expect(dist.keys[plain.winner]).toBe(' Paris');
    expect(plain.sharpened).toBe(false);
    const sharp = decide(dist, drafterTop, [0.5, 0.5], SHARP);
    expect(sharp.sharpened).toBe(true);
    expect(dist.keys[sharp.winner]).toBe(' Sof');
    expect(sharp.scores[dist.keys.indexOf(' Sof')]).toBeCloseTo(0.3 + 0.09, 5);
    // λ above the candidate's mass: no candidate, no change.
    const strict = decide(dist, drafterTop, [0.5, 0.5], { ...SHARP, lambda: 0.4 });
    expect(dist.keys[strict.winner]).toBe(' Paris');
    // Confident ensembles are never sharpened.
    const calm = decide(dist, drafterTop, [0.5, 0.5], { ...SHARP, below: 0.3 });
    expect(calm.sharpened).toBe(false);
  });

  it('geometric sharpening favours what both models support', () => {
    const v = views({ 'ĠParis': 0.9, 'ĠBerlin': 0.1 }, { '▁Paris': 0.02, '▁Berlin': 0.5, '▁Rome': 0.48 });
    const dist = uniteDistribution(v, 10);
    const top = topKeys(qwen, v[0]!.row, 10);
    expect(dist.keys[decide(dist, top, [0.5, 0.5], { ...SHARP, method: 'none' }).winner]).toBe(' Paris');
    const geo = decide(dist, top, [0.5, 0.5], { ...SHARP, method: 'geometric' });
    expect(dist.keys[geo.winner]).toBe(' Berlin');
    expect(geo.scores[dist.keys.indexOf(' Berlin')]).toBeCloseTo(Math.sqrt(0.1 * 0.5), 5);
    expect(geo.scores[dist.keys.indexOf(' Rome')]).toBeLessThan(1e-6);
  });

  it('maps every model’s end-of-sequence token to one key', () => {
    const v = views({ '<|im_end|>': 0.6, 'Ġthe': 0.4 }, { '</s>': 0.7, '▁the': 0.3 });
    const dist = uniteDistribution(v, 10);
    const eos = dist.keys.indexOf(EOS_KEY);
    expect(dist.average[eos]).toBeCloseTo(0.65, 5);
    expect(mistral.appendIds(EOS_KEY, '', false)).toEqual([mistral.eosId]);
  });

  it('GaC averages full softmaxes over the union vocabulary (built once, reused)', () => {
    const union = new GacUnion([qwen, mistral]);
    const v = sofia();
    const dist = union.distribution(v, 10);
    const at = (s: string) => dist.keys.indexOf(s);
    // Unlike UniTE, Mistral's ▁Sof mass stays on " Sof" and " Sofia" gets only Qwen's.
    expect(dist.average[at(' Sof')]).toBeCloseTo((0.2 + 0.4) / 2, 4);
    expect(dist.average[at(' Sofia')]).toBeCloseTo(0.18 / 2, 4);
    expect(dist.average[at(' Paris')]).toBeCloseTo(0.35, 4);
    let total = 0;
    for (const p of dist.average) total += p;
    expect(total).toBeGreaterThan(0.999);
  });

  it('appends the first drafter sub-token for UniTE and the whole word for GaC', () => {
    const ctx = 'The capital is';
    expect(mistral.appendIds(' Sofia', ctx, false).map((id) => mistral.tokenizer.tokenString(id))).toEqual(['▁Sof']);
    expect(mistral.appendIds(' Sofia', ctx, true).map((id) => mistral.tokenizer.tokenString(id))).toEqual(['▁Sof', 'ia']);
    expect(qwen.appendIds(' Sofia', ctx, false).map((id) => qwen.tokenizer.tokenString(id))).toEqual(['ĠSofia']);
    // A digit after a bare-space token: the space and the first digit.
    expect(qwen.appendIds(' 42', 'is', false).map((id) => qwen.tokenizer.tokenString(id))).toEqual(['Ġ', '4']);
  });
});

describe('theorem (paper App. C): a skip never discards the ensemble argmax', () => {
  /** Deterministic pseudo-random generator. */
  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  }

  it('holds for random distributions over a shared vocabulary', () => {
    const rand = rng(7);
    const V = 40;
    const K = 3;
    let skipsA = 0;
    let skipsB = 0;
    for (let trial = 0; trial < 20000; trial++) {
      // Models that partly agree: a shared preference plus each model's own noise.
      const sharpness = 1 + rand() * 5;
      const shared = Array.from({ length: V }, () => rand() * 4 * sharpness);
      const dists = Array.from({ length: K }, () => {
        const noise = rand() * 4;
        const logits = shared.map((x) => x + rand() * noise);
        const m = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - m));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((x) => x / s);
      });
      const argmaxOf = (p: number[]) => p.indexOf(Math.max(...p));
      const drafted = argmaxOf(dists[0]!); // greedy drafter; same vocabulary, so every model aligns on it
      const weights = [1 / K, 1 / K, 1 / K];
      const input = { ownProbabilities: dists.map((p) => p[drafted]!), verifierArgmaxIsOwn: dists.slice(1).map((p) => argmaxOf(p) === drafted), weights };
      const byA = consensusSkip(input, { threshold: 1, unanimity: true });
      const byB = consensusSkip(input, { threshold: 0.5, unanimity: false });
      if (!byA && !byB) continue;
      if (byA) skipsA++;
      if (byB) skipsB++;
      const avg = Array.from({ length: V }, (_, t) => dists.reduce((s, p) => s + p[t]! / K, 0));
      expect(argmaxOf(avg)).toBe(drafted);
    }
    expect(skipsA).toBeGreaterThan(100);
    expect(skipsB).toBeGreaterThan(100);
  });
});
