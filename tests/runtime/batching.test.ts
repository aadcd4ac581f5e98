/**
 * Batched passes: sequences of one model whose passes wait together share one onnxruntime run
 * (pasts and passes of different lengths aligned by the attention mask and per-row positions),
 * and each gets what it gets alone — the same greedy ids, logits within float rounding, held
 * rows read back alike. Graphs that cannot batch take turns, with one warning, and give the
 * same; `batchPasses: false` keeps every pass alone.
 */
import { loadModel, type CausalLM } from '../../src/index';
import type { MemberSequence } from '../../src/research';
import type { FixtureModelOptions } from '../../tools/fixtures/tinyDecoder';
import { fixtureModel } from '../helpers/fixtures';
import { scriptedModel } from '../helpers/scripted';

const PROMPTS = ['Mia has 37 marbles.', 'Hi', 'Count: 1, 2, 3, 4, 5, 6, 7, 8, 9 and then', 'The quick brown fox', 'Q: 12 + 30 =', 'A longer opening line that has rather more tokens than the others do'];

interface Run {
  ids: number[];
  /** Per step, the top-5 logits of the last row. */
  tops: number[][];
  /** Per step, the logit of a fixed id, read back from the held row. */
  reads: number[];
}

/**
 * Greedy decoding that mixes pass shapes as SAFE does: one-token steps, and every fourth step a
 * verification chunk of three tokens (the greedy ones, fed again after a crop).
 */
async function decode(seq: MemberSequence | CausalLM, text: string, steps: number): Promise<Run> {
  const ids = seq.tokenizer.encode(text);
  const run: Run = { ids: [], tops: [], reads: [] };
  let scores = await seq.score(ids, { rows: 1, topK: 5 });
  for (let i = 0; i < steps; i++) {
    const row = scores.at(-1);
    run.ids.push(row.best);
    run.tops.push([...row.top().logits]);
    run.reads.push((await row.logitsOf([7]))[0]!);
    if (i % 4 === 3 && run.ids.length >= 3) {
      const back = seq.length - 2;
      const chunk = [...seq.tokens.slice(back), row.best];
      seq.crop(back);
      scores = await seq.score(chunk, { rows: 'all', topK: 5 });
    } else scores = await seq.score([row.best], { rows: 1, topK: 5 });
  }
  return run;
}

function largestDifference(a: Run[], b: Run[]): number {
  let d = 0;
  a.forEach((r, i) => r.tops.forEach((t, s) => t.forEach((x, k) => (d = Math.max(d, Math.abs(x - b[i]!.tops[s]![k]!))))));
  a.forEach((r, i) => r.reads.forEach((x, s) => (d = Math.max(d, Math.abs(x - b[i]!.reads[s]!)))));
  return d;
}

async function aloneAndTogether(lm: CausalLM, steps = 16): Promise<{ alone: Run[]; together: Run[] }> {
  const alone: Run[] = [];
  for (const p of PROMPTS) {
    const seq = lm.openSequence();
    alone.push(await decode(seq, p, steps));
    seq.close();
  }
  const sequences = PROMPTS.map(() => lm.openSequence());
  const together = await Promise.all(PROMPTS.map((p, i) => decode(sequences[i]!, p, steps)));
  sequences.forEach((s) => s.close());
  return { alone, together };
}

const BATCHABLE: Array<[string, FixtureModelOptions]> = [
  ['kv cache + position_ids (qwen3)', { tokenizer: 'qwen3', hiddenSize: 16, seed: 3 }],
  ['grouped-query attention, SwiGLU (llama3)', { tokenizer: 'llama3', hiddenSize: 16, numHeads: 4, numKeyValueHeads: 2, gatedMlp: true, seed: 4 }],
  ['float16 cache (llama2)', { tokenizer: 'llama2', cacheDType: 'float16', numKeyValueHeads: 1, seed: 5 }],
];

describe.each(BATCHABLE)('batched passes on %s', (_name, options) => {
  let lm: CausalLM;
  const warnings: string[] = [];
  beforeAll(async () => {
    lm = await loadModel(fixtureModel(options), { onWarning: (w) => warnings.push(w) });
  });
  afterAll(() => lm.dispose());

  it('concurrent sequences share runs and each gets what it gets alone', async () => {
    const before = lm.traffic.batchedPasses;
    const { alone, together } = await aloneAndTogether(lm);
    expect(together.map((r) => r.ids)).toEqual(alone.map((r) => r.ids));
    expect(largestDifference(together, alone)).toBeLessThan(options.cacheDType === 'float16' ? 2e-2 : 1e-4);
    expect(lm.traffic.batchedPasses - before).toBeGreaterThan(PROMPTS.length * 8);
    expect(warnings.filter((w) => /take turns/.test(w))).toEqual([]);
    expect(lm.openSequences).toBe(0);
  });

  it('the model’s own sequence is untouched by the others', async () => {
    const ids = lm.tokenizer.encode(PROMPTS[0]!);
    lm.reset();
    const own = await lm.score(ids, { rows: 1, topK: 3 });
    const others = PROMPTS.map(() => lm.openSequence());
    await Promise.all(others.map((s, i) => s.score(lm.tokenizer.encode(PROMPTS[i]!), { rows: 1 })));
    const next = await lm.score([own.at(-1).best], { rows: 1, topK: 3 });
    lm.reset();
    await lm.score(ids, { rows: 1 });
    const reference = await lm.score([own.at(-1).best], { rows: 1, topK: 3 });
    expect([...next.at(-1).top().ids]).toEqual([...reference.at(-1).top().ids]);
    others.forEach((s) => s.close());
    lm.reset();
  });
});

describe('graphs that cannot batch take turns', () => {
  /** Loads `dir`, runs `count` sequences alone and together: the same results, no batched pass, one warning naming `reason`. */
  async function takesTurns(dir: string, count: number, reason: RegExp): Promise<void> {
    const warnings: string[] = [];
    const lm = await loadModel(dir, { onWarning: (w) => warnings.push(w) });
    try {
      const { alone, together } = await aloneAndTogether(lm, count);
      expect(together).toEqual(alone);
      expect(lm.traffic.batchedPasses).toBe(0);
      const turns = warnings.filter((w) => /take turns/.test(w));
      expect(turns).toHaveLength(1);
      expect(turns[0]).toMatch(reason);
    } finally {
      await lm.dispose();
    }
  }

  it.each([
    ['no position_ids', { tokenizer: 'llama2', positionIds: false, seed: 8 } as FixtureModelOptions, /position_ids/],
    ['a merged decoder', { tokenizer: 'llama2', cache: 'merged', fileName: 'decoder_model_merged.onnx', seed: 9 } as FixtureModelOptions, /merged decoder/],
    // q8 exports quantize activations per tensor: one scale for the whole batch.
    ['a dynamically quantized (q8) head', { tokenizer: 'llama2', head: 'q8', hiddenSize: 32, seed: 61 } as FixtureModelOptions, /DynamicQuantizeLinear quantizes activations with one scale for the whole batch/],
  ])('%s: one warning, the same results', async (_name, options, reason) => {
    await takesTurns(fixtureModel(options), 8, reason);
  });

  it('a graph with a batch size of 1 (a scripted fixture) takes turns with the same results', async () => {
    const dir = await scriptedModel({ tokenizer: 'qwen3', scripts: [{ prompt: 'Hi', completion: ' there, friend.', rawPrompt: true }] });
    await takesTurns(dir, 6, /batch axis/);
  });

  it('a graph that claims a batch axis it cannot serve is caught by the first batched run, which is redone alone', async () => {
    const dir = await scriptedModel({ tokenizer: 'qwen3', scripts: [{ prompt: 'Hi', completion: ' there, friend.', rawPrompt: true }], claimBatchAxis: true });
    await takesTurns(dir, 6, /differ from the same passes run alone|refused a batched run/);
  });

  it('batchPasses: false runs every pass alone, silently', async () => {
    const warnings: string[] = [];
    const lm = await loadModel(fixtureModel(BATCHABLE[0]![1]), { batchPasses: false, onWarning: (w) => warnings.push(w) });
    try {
      const { alone, together } = await aloneAndTogether(lm, 6);
      expect(together).toEqual(alone);
      expect(lm.traffic.batchedPasses).toBe(0);
      expect(warnings).toEqual([]);
    } finally {
      await lm.dispose();
    }
  });
});
