/**
 * The look-ahead seam: a verifier's probability of a multi-token continuation, by the chain rule
 * over its own tokenization, scored through its cache — equal to the product of the per-token
 * probabilities forward() gives on the same sequence from an empty cache.
 */
import { loadModel, SafeEnsemble, type CausalLM, type EnsembleResult } from '../../src/index';
import type { RowScore } from '../../src/member/scores';
import { lookAheadDecision, nearestExtensions, type LookAheadModel } from '../../src/ensemble/lookAheadScoring';
import { Vocabulary } from '../../src/ensemble/vocabulary';
import { scriptedModel } from '../helpers/scripted';
import { logSumExp, resolveOptions } from '../../src/research';
import { bundledModels } from '../../src/demo/models';
import { generationState } from '../../src/ensemble/generation';
import { renderPrompt } from '../../src/ensemble/prompt';
import { VerifierScorer } from '../../src/ensemble/scorer';
import { encodeResponse } from '../../src/text/continuation';

const [QWEN, MISTRAL, LLAMA3] = bundledModels({ all: true }) as [string, string, string];

/** log P(ids[from..]) after prompt ++ ids[..from], by forward() over the whole sequence from an empty cache. */
async function chainRule(lm: CausalLM, prompt: number[], ids: number[], from: number): Promise<number> {
  lm.reset();
  const logits = await lm.forward([...prompt, ...ids], { logits: 'all' });
  let sum = 0;
  for (let k = from; k < ids.length; k++) {
    const row = logits.row(prompt.length + k - 1);
    sum += row[ids[k]!]! - logSumExp(row);
  }
  return sum;
}

describe('look-ahead: a verifier’s probability of a continuation', () => {
  let drafter: CausalLM;
  let verifier: CausalLM;
  beforeAll(async () => {
    [drafter, verifier] = await Promise.all([loadModel(QWEN), loadModel(MISTRAL)]);
  });
  afterAll(() => Promise.all([drafter.dispose(), verifier.dispose()]));

  it.each([
    ['', 'The answer is 62.'],
    ['Mia has', ' 62 marbles in all.'],
    ['She had 37 and found 25', ', so 37 + 25 = 62.'],
  ])('after %j: %j equals the product of forward()’s per-token probabilities', async (written, continuation) => {
    const input = 'Mia has 37 marbles. She finds 25 more. How many does she have now?';
    const models = [drafter, verifier];
    const prompts = models.map((m) => renderPrompt(m, input, { rawPrompt: false, reserve: 1 }));
    const state = generationState(models, prompts, 0, resolveOptions(2, {}));
    const scorer = new VerifierScorer(state);
    const bytes = new TextEncoder().encode(written);
    const got = await scorer.continuationProbability(0, bytes, continuation);
    expect(got).not.toBeNull();
    // The verifier's own tokenization of written ++ continuation, the continuation's tokens after the boundary.
    const spans = encodeResponse(verifier.tokenizer, prompts[1]!.context, written + continuation);
    const from = written.length === 0 ? 0 : spans.ends.indexOf(bytes.length) + 1;
    expect(got!.ids).toEqual(spans.ids.slice(from));
    expect(got!.ids.length).toBeGreaterThan(1);
    const expected = await chainRule(verifier, prompts[1]!.ids, spans.ids, from);
    expect(got!.logProbability).toBeCloseTo(expected, 4);
    expect(got!.probability).toBeCloseTo(Math.exp(expected), 8);
    // Through the cache: asked again with the cache holding another sequence, the same answer.
    const again = await scorer.continuationProbability(0, bytes, continuation);
    expect(again!.logProbability).toBeCloseTo(expected, 4);
  });

  it('is null where the verifier’s tokenization has no boundary after the written text', async () => {
    const models = [drafter, verifier];
    const prompts = models.map((m) => renderPrompt(m, 'Say hello.', { rawPrompt: false, reserve: 1 }));
    const scorer = new VerifierScorer(generationState(models, prompts, 0, resolveOptions(2, {})));
    // "Hel" + "lo": no tokenizer here ends a token after "Hel" in "Hello".
    expect(await scorer.continuationProbability(0, new TextEncoder().encode('Hel'), 'lo world')).toBeNull();
  });
});

describe('look-ahead union scoring: prefix masses and the partition', () => {
  let qwen: CausalLM;
  let mistral: CausalLM;
  beforeAll(async () => {
    [qwen, mistral] = await Promise.all([loadModel(QWEN), loadModel(MISTRAL)]);
  });
  afterAll(() => Promise.all([qwen.dispose(), mistral.dispose()]));

  /** A look-ahead model over forward() from an empty cache: every path costs a full recomputation. */
  function modelOver(lm: CausalLM, prefix: number[], context: string, weight: number, passes: { count: number }): LookAheadModel {
    const fullRows = async (ids: number[], rows: number) => {
      lm.reset();
      const scores = await lm.score(ids, { rows, topK: 10, holdFrom: 0, full: true });
      return Array.from({ length: rows }, (_, i) => scores.at(i));
    };
    return {
      vocab: Vocabulary.of(lm.tokenizer),
      weight,
      context,
      dummySpace: false,
      row: null as unknown as RowScore,
      wholeRows: true,
      atHand: () => false,
      rowsAfter: async (path) => {
        passes.count++;
        return { rows: await fullRows([...prefix, ...path], path.length), ran: true };
      },
      init: async function (this: LookAheadModel) {
        this.row = (await fullRows(prefix, 1))[0]!;
      },
    } as LookAheadModel & { init(): Promise<void> };
  }

  /** P(text continues with s) by brute force: the chain rule over tokenize(s), the last factor summed over the whole vocabulary. */
  async function bruteMass(lm: CausalLM, prefix: number[], context: string, s: string): Promise<number> {
    const vocab = Vocabulary.of(lm.tokenizer);
    const ids = vocab.tokenize(s, context);
    lm.reset();
    const logits = await lm.forward([...prefix, ...ids.slice(0, -1)], { logits: 'all' });
    let log = 0;
    for (let i = 0; i < ids.length - 1; i++) {
      const row = logits.row(prefix.length - 1 + i);
      log += row[ids[i]!]! - logSumExp(row);
    }
    const last = vocab.key(ids[ids.length - 1]!);
    const row = logits.row(prefix.length - 1 + ids.length - 1);
    const lse = logSumExp(row);
    let sum = 0;
    for (let id = 0; id < vocab.size; id++) {
      if (vocab.isEos(id)) continue;
      if (vocab.key(id).startsWith(last)) sum += Math.exp(row[id]! - lse);
    }
    return Math.exp(log) * sum;
  }

  it('each model’s prefix mass is the chain rule over its tokens times the mass of every token starting with the last piece', async () => {
    const input = 'Mia has 37 marbles. She finds 25 more. How many does she have now?';
    const written = 'Mia has 37 marbles and finds 25 more, so she has 37 + 25 = ';
    const members = [qwen, mistral].map((lm) => {
      const prompt = renderPrompt(lm, input, { rawPrompt: false, reserve: 1 });
      const spans = encodeResponse(lm.tokenizer, prompt.context, written.trimEnd());
      return { lm, prefix: [...prompt.ids, ...spans.ids] };
    });
    // The response ends in a space both tokenizers keep apart from the number: score after it.
    const candidates = ['6', '62', '5', '62.', ' 6'];
    const context = written.trimEnd();
    const passes = { count: 0 };
    const models = members.map(({ lm, prefix }) => modelOver(lm, prefix, context, 0.5, passes));
    await Promise.all(models.map((m) => (m as LookAheadModel & { init(): Promise<void> }).init()));
    const result = await lookAheadDecision(models, candidates, false);
    expect(result).not.toBeNull();
    for (const [mi, { lm, prefix }] of members.entries()) {
      for (const [c, s] of candidates.entries()) {
        const expected = await bruteMass(lm, prefix, context, s);
        expect(result!.prefixMass[mi]![c]).toBeCloseTo(expected, 6);
      }
    }
    // The partition: "6" loses the mass of its nearest extension "62" ("62." is inside "62"), and each model's shares sum to 1.
    for (const [mi, mass] of result!.prefixMass.entries()) {
      const share = result!.decision.perModel[mi]!;
      const exclusive = [mass[0]! - mass[1]!, mass[1]! - mass[3]!, mass[2]!, mass[3]!, mass[4]!].map((x) => Math.max(0, x));
      const total = exclusive.reduce((a, b) => a + b, 0);
      exclusive.forEach((x, c) => expect(share[c]).toBeCloseTo(x / total, 9));
    }
    expect(nearestExtensions(candidates)).toEqual([[1], [3], [], [], []]);
    expect(passes.count).toBeGreaterThan(0);
  });

  /** Two models (Qwen and Mistral unless given) as look-ahead scoring sees them right after "… 37 + 25 =" (equal weights). */
  async function afterTheSum(pair: CausalLM[] = [qwen, mistral]): Promise<LookAheadModel[]> {
    const input = 'Mia has 37 marbles. She finds 25 more. How many does she have now?';
    const written = 'Mia has 37 marbles and finds 25 more, so she has 37 + 25 =';
    const passes = { count: 0 };
    const models = pair.map((lm) => {
      const prompt = renderPrompt(lm, input, { rawPrompt: false, reserve: 1 });
      const spans = encodeResponse(lm.tokenizer, prompt.context, written);
      return modelOver(lm, [...prompt.ids, ...spans.ids], written, 0.5, passes);
    });
    await Promise.all(models.map((m) => (m as LookAheadModel & { init(): Promise<void> }).init()));
    return models;
  }

  it('a refinement splits the winning event without renormalizing it: its parts keep each model’s share of the event', async () => {
    const models = await afterTheSum();
    const candidates = [' 6', ' 5', ' 7'];
    const coarse = (await lookAheadDecision(models, candidates, false))!;
    const w = coarse.decision.keys[coarse.decision.winner]!;
    const refined = (await lookAheadDecision(models, candidates, true))!;
    const { keys, perModel, winner } = refined.decision;
    // The refinement scored longer strings inside the winner's event (" 6" → " 62", " 65", …).
    expect(keys[0]).toBe(w);
    expect(keys.length).toBeGreaterThan(1);
    expect(keys.every((k) => k.startsWith(w))).toBe(true);
    expect(keys[winner]!.startsWith(w)).toBe(true);
    for (let mi = 0; mi < models.length; mi++) {
      const parts = perModel[mi]!.reduce((a, b) => a + b, 0);
      expect(parts).toBeCloseTo(coarse.decision.perModel[mi]![coarse.decision.winner]!, 9);
    }
    // The winner is the best string no other candidate extends, or one with listed extensions
    // ("it, then none of those") only where the drafter commits exactly it.
    const { average } = refined.decision;
    const leaf = (c: number) => !keys.some((k, e) => e !== c && k.startsWith(keys[c]!));
    if (!leaf(winner)) expect(new TextDecoder().decode(qwen.tokenizer.idsToBytes(refined.appended))).toBe(keys[winner]);
    for (let c = 0; c < keys.length; c++) if (leaf(c)) expect(average[c]!).toBeLessThanOrEqual(average[winner]!);
  });

  it('decides the family first: a root with extensions keeps its whole prefix mass against a rival listed alone', async () => {
    const models = await afterTheSum();
    // The likeliest first digit's family split over several members, against every rival root.
    const roots = [' 6', ' 5', ' 7', ' 4', ' 8'];
    const coarse = (await lookAheadDecision(models, roots, false))!;
    const best = roots[coarse.decision.winner]!;
    const split = [best, `${best}0`, `${best}1`, `${best}2`, `${best}3`, `${best}4`, `${best}5`, `${best}6`, `${best}7`, `${best}8`, `${best}9`];
    const candidates = [...split, ...roots.filter((r) => r !== best)];
    const refined = (await lookAheadDecision(models, candidates, true))!;
    // Split eleven ways, no single member of the family may outscore the runner-up root alone;
    // the family's share does, and the decision stays inside it.
    expect(refined.decision.keys[refined.decision.winner]!.startsWith(best)).toBe(true);
    // The family score is the root's whole prefix mass over the roots' (per model, weighted).
    const family = (root: string) => models.reduce((sum, m, mi) => {
      const at = (r: string) => coarse.prefixMass[mi]![roots.indexOf(r)]!;
      return sum + m.weight * (at(root) / roots.reduce((t, r) => t + at(r), 0));
    }, 0);
    for (const r of roots) expect(family(best)).toBeGreaterThanOrEqual(family(r));
    expect(refined.appended.length).toBeGreaterThan(0);
  });

  it('inside a family only the models at a token boundary after its root vote: a model that writes the number whole has no say on its next digit', async () => {
    const llama3 = await loadModel(LLAMA3);
    try {
      // Qwen writes " 62" as " ", "6", "2"; Llama 3 as " ", "62": inside a family such as " 6" the
      // next digit is a boundary only for Qwen (Llama 3 would be inside its token "62").
      const models = await afterTheSum([llama3, qwen]);
      const roots = [' 4', ' 5', ' 6', ' 7'];
      const root = roots[(await lookAheadDecision(models, roots, false))!.decision.winner]!;
      const candidates = [root, ...[...'0123456789'].map((d) => root + d), ...roots.filter((r) => r !== root)];
      const refined = (await lookAheadDecision(models, candidates, true))!;
      const { keys, perModel, average } = refined.decision;
      expect(keys[0]).toBe(root);
      expect(keys.slice(1).some((k) => k.length > root.length)).toBe(true);
      // The decision inside the family is Qwen's shares alone.
      keys.forEach((_, c) => expect(average[c]).toBeCloseTo(perModel[1]![c]!, 12));
      expect(perModel[0]!.some((x, c) => Math.abs(x - perModel[1]![c]!) > 1e-3)).toBe(true);
      // The first stage, over the roots, is still the weighted mean of both.
      const first = (await lookAheadDecision(models, candidates, false))!.decision;
      first.keys.forEach((_, c) => expect(first.average[c]).toBeCloseTo(0.5 * first.perModel[0]![c]! + 0.5 * first.perModel[1]![c]!, 12));
    } finally {
      await llama3.dispose();
    }
  });
});

describe('look-ahead union scoring: a pair that splits numbers differently', () => {
  // Llama 3 writes "37" as one token, Qwen 3 as "3", "7". Both follow the same script; the
  // drafter is unsure of its whole-number token, the verifier sure of each digit.
  const PROMPT = 'Q: How many marbles does Mia have?\nA:';
  const COMPLETION = ' Mia has 37 marbles. The answer is 37.';
  let llama: CausalLM;
  let qwen3: CausalLM;
  beforeAll(async () => {
    const scripts = [{ prompt: PROMPT, completion: COMPLETION, rawPrompt: true }];
    llama = await loadModel(await scriptedModel({ tokenizer: 'llama3', scripts, context: 'text', confidence: 0.45 }));
    qwen3 = await loadModel(await scriptedModel({ tokenizer: 'qwen3', scripts, context: 'text', confidence: 0.9 }));
  }, 120_000);
  afterAll(async () => {
    await llama?.dispose();
    await qwen3?.dispose();
  });

  it('first-token scoring commits the verifier’s first digit; look-ahead commits the whole number', async () => {
    const ensemble = new SafeEnsemble([llama, qwen3]);
    // Gates off: every stable position is ensembled, so the number's position is decided by the union.
    const base = { rawPrompt: true, trace: true, maxNewTokens: 12, unanimitySkip: false, consensusThreshold: 1 } as const;
    const at37 = (r: EnsembleResult) => r.trace!.find((t) => t.drafted.text === '37');
    const first = await ensemble.generate(PROMPT, { ...base, unionScoring: 'first-token' });
    const ahead = await ensemble.generate(PROMPT, { ...base, unionScoring: 'look-ahead' });
    expect(at37(first)?.winner.text).toBe('3');
    expect(at37(first)!.winner.ids).toEqual([llama.tokenizer.idOfBytes(new TextEncoder().encode('3'))]);
    // Look-ahead: the number is decided whole (with what follows it where a model ends a token there).
    expect(ahead.text).toBe(' Mia has 37 marbles. The answer is 37');
    const id37 = llama.tokenizer.idOfBytes(new TextEncoder().encode('37'));
    const points = ahead.trace!.filter((t) => t.winner.text.includes('3'));
    expect(points.length).toBeGreaterThan(0);
    for (const point of points) {
      expect(point.winner.text).toContain('37');
      expect(point.winner.ids).toContain(id37);
      // Qwen's mass of the winner is its chain P("3")·P("7" | "3")…, and its mass of a shorter rival includes it.
      const won = point.candidates.find((c) => c.text === point.winner.text)!;
      expect(won.prefixMass![1]).toBeGreaterThan(0.5);
      for (const c of point.candidates) if (won.text.startsWith(c.text)) expect(c.prefixMass![1]).toBeGreaterThanOrEqual(won.prefixMass![1]! - 1e-9);
    }
    expect(ahead.stats.lookAhead!.points).toBe(ahead.trace!.length);
    expect(ahead.stats.lookAhead!.passes).toBe(ahead.trace!.reduce((s, t) => s + t.lookAhead!.passes, 0));
    expect(first.stats.lookAhead).toBeUndefined();
  }, 60_000);

  it("greedy 'auto' (the default) scores the split number by look-ahead and the points of one granularity first-token", async () => {
    const ensemble = new SafeEnsemble([llama, qwen3]);
    const base = { rawPrompt: true, trace: true, maxNewTokens: 12, unanimitySkip: false, consensusThreshold: 1 } as const;
    const ahead = await ensemble.generate(PROMPT, { ...base, unionScoring: 'look-ahead' });
    const auto = await ensemble.generate(PROMPT, base);
    expect(auto.text).toBe(ahead.text);
    const byLookAhead = auto.trace!.filter((t) => t.lookAhead);
    const byFirstToken = auto.trace!.filter((t) => !t.lookAhead);
    // The number Llama 3 writes as one token and Qwen 3 as two is decided whole; the words, which
    // both tokenizers split alike here, are decided by their first tokens, as the paper does.
    expect(byLookAhead.map((t) => t.drafted.text)).toContain('37');
    expect(byFirstToken.length).toBeGreaterThan(0);
    for (const t of byFirstToken) {
      const top = [...t.candidates].sort((a, b) => b.average - a.average).slice(0, 6).map((c) => c.text).filter((c) => c !== '<eos>');
      for (const a of top) for (const b of top) if (a !== b) expect(b.startsWith(a)).toBe(false);
      expect(t.candidates.every((c) => c.prefixMass === undefined)).toBe(true);
    }
    expect(auto.stats.lookAhead!.points).toBe(byLookAhead.length);
    expect(auto.stats.ensembledTokens).toBe(auto.trace!.length);
  }, 60_000);

  it("with look-ahead and with 'auto', greedy output is the same through the caches and recomputed from scratch", async () => {
    const ensemble = new SafeEnsemble([llama, qwen3]);
    for (const unionScoring of ['look-ahead', 'auto'] as const) {
      const base = { rawPrompt: true, maxNewTokens: 16, unanimitySkip: false, consensusThreshold: 1, unionScoring };
      const cached = await ensemble.generate(PROMPT, base);
      const recomputed = await ensemble.generate(PROMPT, { ...base, recomputeCaches: true });
      expect(cached.text).toBe(recomputed.text);
      const swapped = await new SafeEnsemble([qwen3, llama]).generate(PROMPT, base);
      expect(swapped.text.length).toBeGreaterThan(0);
    }
  }, 60_000);
});
