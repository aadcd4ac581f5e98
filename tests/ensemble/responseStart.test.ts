import { loadModel, SafeEnsemble, type EnsembleOptions } from '../../src/index';
import { decide, GacUnion, topKeys, uniteDistribution, Vocabulary, type ModelView } from '../../src/research';
import { MISTRAL_TOOLS_TEMPLATE } from '../../tools/fixtures/chatTemplates';
import { rowWith } from '../helpers/logits';
import { realTokenizer } from '../helpers/tokenizers';
import { scriptedModel } from '../helpers/scripted';


const SHARP = { method: 'heuristic' as const, below: 0.5, lambda: 0.1 };

let qwen: Vocabulary;
let mistral: Vocabulary;
beforeAll(async () => {
  qwen = Vocabulary.of(await realTokenizer('qwen3'));
  mistral = Vocabulary.of(await realTokenizer('llama2'));
});

describe("a sentencepiece verifier's dummy-prefix space at the response start", () => {
  // Qwen drafts "Anna" (no space: the response starts here); Mistral's response encoding writes
  // the same word as ▁Anna.
  const views = (dummySpace: boolean, m: Record<string, number>): ModelView[] => [
    { vocab: qwen, row: rowWith(qwen, { Anna: 0.4, Maria: 0.35, The: 0.25 }), weight: 0.5, context: '' },
    { vocab: mistral, row: rowWith(mistral, m), weight: 0.5, context: '', dummySpace },
  ];

  it('UniTE: ▁Anna and Anna are one candidate; a bare ▁ is no candidate', () => {
    const m = { '▁Anna': 0.5, '▁Maria': 0.3, '▁': 0.2 };
    const before = uniteDistribution(views(false, m), 10);
    expect(before.keys).toContain(' Anna'); // the old behaviour: the space became part of the response
    const dist = uniteDistribution(views(true, m), 10);
    expect(dist.keys.filter((k) => k.startsWith(' ') || k === '')).toEqual([]);
    const at = dist.keys.indexOf('Anna');
    expect(dist.perModel[0]![at]).toBeGreaterThan(0.3);
    expect(dist.perModel[1]![at]).toBeGreaterThan(0.5);
    const decision = decide(dist, topKeys(qwen, views(true, m)[0]!.row, 10), [0.5, 0.5], SHARP);
    expect(dist.keys[decision.winner]).toBe('Anna');
  });

  it('UniTE fill-in reads the verifier logit of the spaced token for a string only the drafter proposed', () => {
    // Mistral's top-2 lacks The; its probability of "The" at the response start is that of ▁The.
    const v = views(true, { '▁Anna': 0.6, '▁Maria': 0.3 });
    v[0]!.row = rowWith(qwen, { The: 0.5, Anna: 0.3, Maria: 0.2 });
    v[1]!.row[mistral.tokenizer.tokenToId('▁The')!] = Math.log(0.05);
    const dist = uniteDistribution(v, 2);
    const the = dist.keys.indexOf('The');
    expect(the).toBeGreaterThanOrEqual(0);
    expect(dist.perModel[1]![the]).toBeCloseTo(0.05 / 0.95, 4);
  });

  it('GaC: the spaced strings map onto the bare ones, and the plain union is untouched', () => {
    const m = { '▁Anna': 0.5, '▁Maria': 0.3, '▁': 0.2 };
    const union = new GacUnion([qwen, mistral]);
    const plain = union.distribution(views(false, m), 10);
    expect(plain.keys).toContain(' Anna');
    const dist = union.distribution(views(true, m), 10);
    const anna = dist.keys.indexOf('Anna');
    expect(dist.perModel[0]![anna]).toBeCloseTo(0.4, 4);
    expect(dist.perModel[1]![anna]).toBeCloseTo(0.5, 4);
    expect(dist.keys.filter((k) => k.trim() === '')).toEqual([]);
    // The maps are cached: a later plain view is unchanged.
    expect(union.distribution(views(false, m), 10).keys).toEqual(plain.keys);
  });
});

describe('a bare-space winner', () => {
  it('gives way to the best other entry when the decision is sharpened', () => {
    // Qwen writes " ." as Ġ then . here, Mistral as ▁. in one token: committing the space alone
    // would put the next token inside Mistral's ▁. token.
    const v: ModelView[] = [
      { vocab: qwen, row: rowWith(qwen, { 'Ġ': 0.6, 'Ġ.': 0.1, 'ĠThe': 0.3 }), weight: 0.5, context: '1 + 8 =' },
      { vocab: mistral, row: rowWith(mistral, { '▁': 0.3, '▁.': 0.4, '▁The': 0.3 }), weight: 0.5, context: '1 + 8 =' },
    ];
    const dist = uniteDistribution(v, 10);
    const drafterTop = topKeys(qwen, v[0]!.row, 10);
    const plain = decide(dist, drafterTop, [0.5, 0.5], { ...SHARP, method: 'none' });
    expect(dist.keys[plain.winner]).toBe(' ');
    expect(plain.bareSpaceGaveWay).toBeNull();
    const sharp = decide(dist, drafterTop, [0.5, 0.5], SHARP);
    expect(sharp.sharpened).toBe(true);
    expect(sharp.bareSpaceGaveWay).toBe(' ');
    expect(dist.keys[sharp.winner]).not.toBe(' ');
    expect(dist.keys[sharp.winner]!.startsWith(' ')).toBe(true);
  });

  it('stays when the models agree on it (a space before a number)', () => {
    const v: ModelView[] = [
      { vocab: qwen, row: rowWith(qwen, { 'Ġ': 0.9, 'Ġa': 0.1 }), weight: 0.5, context: 'she has' },
      { vocab: mistral, row: rowWith(mistral, { '▁': 0.8, '▁a': 0.2 }), weight: 0.5, context: 'she has' },
    ];
    const dist = uniteDistribution(v, 10);
    const decision = decide(dist, topKeys(qwen, v[0]!.row, 10), [0.5, 0.5], SHARP);
    expect(dist.keys[decision.winner]).toBe(' ');
    expect(decision.bareSpaceGaveWay).toBeNull();
  });
});

describe('responses never start with a space borrowed from a verifier, in both drafter orders', () => {
  const QUESTION = 'Xiomara has 37 marbles. She finds 25 more. How many marbles does she have now?';
  const ANSWER = 'Xiomara starts with 37 marbles. The answer is 62.';
  // A hesitant byte-level model and a confident sentencepiece one: at the response start the
  // Mistral model's ▁X carries most of the ensemble's mass.
  const models = async () => [
    await loadModel(await scriptedModel({ tokenizer: 'qwen3', scripts: [{ prompt: QUESTION, completion: ANSWER }], confidence: 0.4 })),
    await loadModel(await scriptedModel({ tokenizer: 'llama2', chatTemplate: MISTRAL_TOOLS_TEMPLATE, scripts: [{ prompt: QUESTION, completion: ANSWER }], confidence: 0.95 })),
  ];
  const runs: Array<[string, EnsembleOptions]> = [
    ['every-token UniTE', { strategy: 'every-token' }],
    ['every-token GaC', { strategy: 'every-token', baseEnsembler: 'gac' }],
    ['SAFE, every position contested', { strategy: 'safe', unanimitySkip: false, consensusThreshold: 1 }],
  ];

  it.each([0, 1])('drafter %i', async (drafter) => {
    const ensemble = new SafeEnsemble(await models(), { drafter });
    for (const [label, options] of runs) {
      const r = await ensemble.generate(QUESTION, { ...options, maxNewTokens: 40, trace: true });
      expect({ label, text: r.text }).toEqual({ label, text: expect.not.stringMatching(/^\s/) });
      // At the response start the verifier's ▁X counts as "X" (the drafter's own spaced tokens,
      // its background noise here, stay as they are).
      const first = r.trace!.find((t) => t.tokenIndex === 0);
      if (first) {
        expect(first.candidates.map((c) => c.text)).toContain('X');
        expect(first.candidates.map((c) => c.text)).not.toContain(' X');
      }
    }
    await ensemble.dispose();
  });
});
