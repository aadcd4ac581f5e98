import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, loadModel, SafeEnsemble, TokenizerError, type CausalLM, type EnsembleOptions, type EnsembleResult } from '../../src/index';
import { argmax, decide, encodeContinuation, fromUtf8, isCharBoundary, topKeys, uniteDistribution, utf8, validUtf8Length, Vocabulary } from '../../src/research';
import { renderPromptWith } from '../../src/ensemble/prompt';
import { fixtureModel, scratchDir } from '../helpers/fixtures';
import { scriptedModel } from '../helpers/scripted';
import { comparable } from '../helpers/results';
import { wrapPasses } from '../helpers/passes';

const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many does she have?\nA:';
const RAW: EnsembleOptions = { rawPrompt: true };

/** Same text and statistics, ignoring wall-clock times. */
describe('SafeEnsemble on random tiny decoders (Qwen3 and Mistral tokenizers)', () => {
  let qwen: CausalLM;
  let mistral: CausalLM;
  let ensemble: SafeEnsemble;
  beforeAll(async () => {
    qwen = await loadModel(fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, seed: 5, logitScale: 2 }));
    mistral = await loadModel(fixtureModel({ tokenizer: 'llama2', seed: 6, logitScale: 2 }));
    ensemble = new SafeEnsemble([qwen, mistral]);
  });
  afterAll(() => ensemble.dispose());

  it('consensusThreshold 0 (always skip) gives exactly the drafter-only text', async () => {
    const single = await ensemble.generate(PROMPT, { ...RAW, strategy: 'single', maxNewTokens: 40 });
    const safe = await ensemble.generate(PROMPT, { ...RAW, consensusThreshold: 0, maxNewTokens: 40 });
    expect(safe.text).toBe(single.text);
    expect(safe.stats.ensembledTokens).toBe(0);
    expect(safe.stats.generatedTokens).toBe(single.stats.generatedTokens);
    expect(safe.stats.forwardPasses[1]).toBeGreaterThan(0); // the verifier still verified
  });

  it('with both gates open it ensembles at the first position of every cycle', async () => {
    const r = await ensemble.generate(PROMPT, { ...RAW, stabilityGate: false, unanimitySkip: false, consensusThreshold: 1, maxNewTokens: 30, trace: true });
    expect(r.stats.ensembledTokens).toBe(r.stats.cycles);
    expect(r.stats.acceptedTokens).toBe(0);
    let expected = 0;
    for (const record of r.trace!) {
      expect(record.tokenIndex).toBe(expected);
      expected += record.winner.ids.length;
    }
  });

  it('every-token equals a slow reference that recomputes every model at every step', async () => {
    const maxNewTokens = 20;
    const fast = await ensemble.generate(PROMPT, { ...RAW, strategy: 'every-token', maxNewTokens });
    expect(fast.stats.ensembledTokens).toBe(fast.stats.cycles);
    expect(fast.text).toBe(await slowEveryToken([qwen, mistral], PROMPT, maxNewTokens));
  });

  it('SAFE with caches equals SAFE with every cache recomputed each cycle', async () => {
    for (const options of [{}, { baseEnsembler: 'gac' as const }, { unanimitySkip: false, consensusThreshold: 0.9 }]) {
      const cached = await ensemble.generate(PROMPT, { ...RAW, ...options, maxNewTokens: 40, trace: true });
      const recomputed = await ensemble.generate(PROMPT, { ...RAW, ...options, maxNewTokens: 40, trace: true, recomputeCaches: true });
      expect(recomputed.text).toBe(cached.text);
      // Same decisions at the same places; probabilities agree to float precision (cached and
      // recomputed logits differ by ~1e-6).
      const decisions = (r: EnsembleResult) => r.trace!.map((t) => [t.tokenIndex, t.byteOffset, t.winner, t.models.map((m) => m.token)]);
      expect(decisions(recomputed)).toEqual(decisions(cached));
      recomputed.trace!.forEach((t, i) => expect(t.meanOwnProbability).toBeCloseTo(cached.trace![i]!.meanOwnProbability, 5));
      expect(recomputed.stats.ensembledTokens).toBe(cached.stats.ensembledTokens);
      expect(recomputed.stats.acceptedTokens).toBe(cached.stats.acceptedTokens);
    }
  });

  it('is deterministic: the same input gives the same text and stats', async () => {
    const a = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 40, trace: true });
    const b = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 40, trace: true });
    expect(comparable(b)).toEqual(comparable(a));
    const drafterB = new SafeEnsemble([qwen, mistral], { drafter: 1 });
    const c = await drafterB.generate(PROMPT, { ...RAW, maxNewTokens: 40 });
    expect(c.stats.forwardPasses[1]).toBeGreaterThan(c.stats.forwardPasses[0]!); // Mistral drafts now
  });

  it('streams committed text that concatenates to the result, and cuts before stop strings', async () => {
    const full = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 40 });
    const pieces: string[] = [];
    let result: EnsembleResult | undefined;
    for await (const chunk of ensemble.stream(PROMPT, { ...RAW, maxNewTokens: 40 })) {
      if (chunk.type === 'text') pieces.push(chunk.text);
      else result = chunk.result;
    }
    expect(pieces.join('')).toBe(full.text);
    expect(result!.text).toBe(full.text);
    expect(pieces.length).toBeGreaterThan(1);
    // A stop string taken from the middle of the text, spanning a chunk boundary.
    const stop = full.text.slice(10, 16);
    const cut = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 40, stop: [stop] });
    expect(cut.finishReason).toBe('stop');
    expect(cut.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
  });

  it('a shorter prompt after a longer one equals a fresh run (caches from the last call are not trusted)', async () => {
    const longer = "Q: Nora has 99 apples and gives away 12. Then she buys 40 more and eats 3 of them. How many are left?\nA:";
    await ensemble.generate(longer, { ...RAW, maxNewTokens: 20 });
    const after = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 30, trace: true });
    const fresh = new SafeEnsemble([await loadModel(qwen.info.dir), await loadModel(mistral.info.dir)]);
    const reference = await fresh.generate(PROMPT, { ...RAW, maxNewTokens: 30, trace: true });
    await fresh.dispose();
    expect(after.text).toBe(reference.text);
    expect(after.trace!.map((t) => t.winner)).toEqual(reference.trace!.map((t) => t.winner));
  });

  it('maxNewTokens counts drafter tokens', async () => {
    const r = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 7 });
    expect(r.stats.generatedTokens).toBeLessThanOrEqual(7);
    if (r.finishReason === 'length') expect(r.stats.generatedTokens).toBe(7);
  });

  it('aborts within one forward pass and stays reusable', async () => {
    const controller = new AbortController();
    let calls = 0;
    let callsAtAbort = -1;
    const undo = [qwen, mistral].map((m) =>
      wrapPasses(m, (score) => (...args) => {
        calls++;
        return score(...args);
      }),
    );
    try {
      let result: EnsembleResult | undefined;
      for await (const chunk of ensemble.stream(PROMPT, { ...RAW, maxNewTokens: 200, signal: controller.signal })) {
        if (chunk.type === 'text' && callsAtAbort < 0) {
          controller.abort();
          callsAtAbort = calls;
        }
        if (chunk.type === 'result') result = chunk.result;
      }
      expect(result!.finishReason).toBe('abort');
      expect(calls).toBe(callsAtAbort); // no forward pass started after the abort
    } finally {
      undo.forEach((u) => u());
    }
    const after = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 30 });
    const fresh = new SafeEnsemble([await loadModel(qwen.info.dir), await loadModel(mistral.info.dir)]);
    const reference = await fresh.generate(PROMPT, { ...RAW, maxNewTokens: 30 });
    await fresh.dispose();
    expect(after.text).toBe(reference.text);
  });

  it('an abort from a timer mid-generation stops it', async () => {
    const r = await ensemble.generate(PROMPT, { ...RAW, maxNewTokens: 2000, signal: AbortSignal.timeout(30) });
    expect(r.finishReason).toBe('abort');
    expect(r.stats.generatedTokens).toBeLessThan(2000);
  });

  it('rejects bad configuration before any model runs', async () => {
    await expect(ensemble.generate(PROMPT, { draftLength: 0 })).rejects.toThrow(/draftLength: must be an integer/);
    await expect(ensemble.generate('   ')).rejects.toThrow(/prompt is empty/);
    expect(() => new SafeEnsemble([qwen, qwen])).toThrow(/appears twice/);
    expect(() => new SafeEnsemble([qwen, mistral], { drafter: 2 })).toThrow(/drafter: index 2 is out of range/);
    expect(() => new SafeEnsemble([qwen, mistral], { consensusThreshold: 3 })).toThrow(InvalidArgumentError);
    const solo = new SafeEnsemble([qwen]);
    await expect(solo.generate(PROMPT, RAW)).rejects.toThrow(/'safe' needs at least two models; with one model use strategy 'single'/);
    expect((await solo.generate(PROMPT, { ...RAW, strategy: 'single', maxNewTokens: 3 })).stats.generatedTokens).toBeGreaterThan(0);
  });
});

describe('SafeEnsemble rejects tokenizers that cannot round-trip text', () => {
  it('names the model and the problem', async () => {
    const dir = scratchDir('lowercase');
    cpSync(fixtureModel({ tokenizer: 'llama2' }), dir, { recursive: true });
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    json.normalizer = { type: 'Sequence', normalizers: [{ type: 'Lowercase' }, ...json.normalizer.normalizers] };
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const lowercase = await loadModel(dir);
    const other = await loadModel(fixtureModel({ tokenizer: 'llama2', seed: 9 }));
    let error: unknown;
    try {
      new SafeEnsemble([other, lowercase]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TokenizerError);
    expect((error as Error).message).toMatch(/does not reproduce the test string.*byte-exact tokenizers/);
    await Promise.all([lowercase.dispose(), other.dispose()]);
  });
});

describe("the paper's Figure 3 situation on scripted models", () => {
  const words = ' Incorrect, said Nora: photosynthesis is Incorrect. Mitochondria, Nora!';
  const lowConsensus: EnsembleOptions = { ...RAW, unanimitySkip: false, trace: true, maxNewTokens: 60 };

  /** Byte ranges strictly inside the words the Mistral drafter splits and Qwen keeps whole. */
  function insideWords(text: string): Array<[number, number]> {
    const bytes = utf8(text);
    const ranges: Array<[number, number]> = [];
    for (const word of ['Incorrect', 'Nora']) {
      let at = text.indexOf(word);
      while (at >= 0) {
        const start = utf8(text.slice(0, at)).length;
        ranges.push([start + 1, start + utf8(word).length - 1]);
        at = text.indexOf(word, at + 1);
      }
    }
    expect(bytes.length).toBeGreaterThan(0);
    return ranges;
  }

  it('never ensembles inside a word the drafter splits (Inc|orrect, N|ora) and the verifier keeps whole', async () => {
    const mistral = await loadModel(await scriptedModel({ tokenizer: 'llama2', scripts: [{ prompt: PROMPT, completion: words, rawPrompt: true }], confidence: 0.45 }));
    const qwen = await loadModel(await scriptedModel({ tokenizer: 'qwen3', scripts: [{ prompt: PROMPT, completion: words, rawPrompt: true }], confidence: 0.45 }));
    const ensemble = new SafeEnsemble([mistral, qwen]);
    const gated = await ensemble.generate(PROMPT, lowConsensus);
    expect(gated.text).toBe(words.trimStart());
    expect(gated.trace!.length).toBeGreaterThan(3);
    const inside = insideWords(words);
    const isInside = (offset: number) => inside.some(([a, b]) => offset >= a && offset <= b);
    expect(gated.trace!.filter((t) => isInside(t.byteOffset))).toEqual([]);
    // Look-ahead scores " Incorrect" whole at the response start: each model tokenizes it after
    // its prompt (the sentencepiece drafter as "▁In", "correct", not after a dummy "▁").
    const ahead = await ensemble.generate(PROMPT, { ...lowConsensus, unionScoring: 'look-ahead' });
    expect(ahead.text).toBe(words.trimStart());
    expect(ahead.trace![0]!.winner).toMatchObject({ text: ' Incorrect', ids: [mistral.tokenizer.tokenToId('▁In'), mistral.tokenizer.tokenToId('correct')] });
    // Without the stability gate the same run does ask the verifier mid-word.
    const ungated = await ensemble.generate(PROMPT, { ...lowConsensus, stabilityGate: false });
    expect(ungated.trace!.some((t) => isInside(t.byteOffset))).toBe(true);
    await ensemble.dispose();
  });

  it('never treats a position inside a multi-byte character as a boundary', async () => {
    const text = ' Glyphs 𓀀𓁐 and ꙮ and 𝔘 are rare, 日本語 too.';
    const qwen = await loadModel(await scriptedModel({ tokenizer: 'qwen3', scripts: [{ prompt: PROMPT, completion: text, rawPrompt: true }], confidence: 0.45 }));
    const mistral = await loadModel(await scriptedModel({ tokenizer: 'llama2', scripts: [{ prompt: PROMPT, completion: text, rawPrompt: true }], confidence: 0.45 }));
    const ensemble = new SafeEnsemble([qwen, mistral]);
    const r = await ensemble.generate(PROMPT, { ...lowConsensus, draftLength: 3 });
    // Both tokenizers split 𓀀 and 𓁐 into bytes and share boundaries inside them (Qwen 2+1+1,
    // Mistral 1+1+1+1): only the character check keeps those positions out.
    expect(r.text.startsWith(' Glyphs 𓀀𓁐 and')).toBe(true);
    const bytes = utf8(r.text);
    expect(r.trace!.length).toBeGreaterThan(5);
    for (const t of r.trace!) expect(isCharBoundary(bytes, t.byteOffset)).toBe(true);
    await ensemble.dispose();
  });
});

/** Every-token UniTE written the slow way: full recompute of every model at every step. */
async function slowEveryToken(models: CausalLM[], prompt: string, maxNewTokens: number): Promise<string> {
  const prompts = models.map((m) => renderPromptWith(m.tokenizer, prompt, { rawPrompt: true }));
  const vocabs = models.map((m) => Vocabulary.of(m.tokenizer));
  const ids: number[] = [];
  let bytes = new Uint8Array(0);
  for (let step = 0; step < maxNewTokens; step++) {
    const rows: Float32Array[] = [];
    for (let i = 0; i < models.length; i++) {
      const m = models[i]!;
      let seq: number[];
      if (i === 0) seq = prompts[0]!.ids.concat(ids);
      else {
        const text = fromUtf8(bytes.subarray(0, validUtf8Length(bytes)));
        const spans = encodeContinuation(m.tokenizer, prompts[i]!.context, text) ?? encodeContinuation(m.tokenizer, { text: '', special: null }, text)!;
        seq = prompts[i]!.ids.concat(spans.ids);
      }
      m.reset();
      rows.push(Float32Array.from((await m.forward(seq, { logits: 'last' })).row(-1)));
    }
    let from = Math.max(0, bytes.length - 48);
    while (from < bytes.length && !isCharBoundary(bytes, from)) from++;
    const context = fromUtf8(bytes.subarray(from));
    const views = models.map((_, i) => ({ vocab: vocabs[i]!, row: rows[i]!, weight: 1 / models.length, context }));
    const decision = decide(uniteDistribution(views, 10), topKeys(vocabs[0]!, rows[0]!, 10), [0.5, 0.5], { method: 'heuristic', below: 0.5, lambda: 0.1 });
    let appended = vocabs[0]!.appendIds(decision.keys[decision.winner]!, context, false);
    if (appended.length === 0) appended = [argmax(rows[0]!)];
    let done = false;
    for (const id of appended) {
      if (vocabs[0]!.isEos(id) || ids.length >= maxNewTokens) {
        done = true;
        break;
      }
      ids.push(id);
      const next = new Uint8Array(bytes.length + models[0]!.tokenizer.tokenBytes(id).length);
      next.set(bytes);
      next.set(models[0]!.tokenizer.tokenBytes(id), bytes.length);
      bytes = next;
    }
    if (done || ids.length >= maxNewTokens) break;
  }
  return fromUtf8(bytes);
}
