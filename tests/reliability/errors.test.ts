/**
 * The bad-input matrix: every case must fail with a typed SafeEnsembleError whose code is stable
 * and whose message names the offending thing and the fix; afterwards the process, a canary
 * ensemble loaded before all cases, and the native session count are exactly as they were.
 */
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HumanMessage } from '@langchain/core/messages';
import { describeValue } from '../../src/describeValue';
import { loadModel, SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleError, SafeEnsembleLLM, type CausalLM, type EnsembleOptions } from '../../src/index';
import { liveSessionCount, type SafeEnsembleErrorCode } from '../../src/research';
import { DT, encodeModel, GraphBuilder, randomMatrix, seededRandom } from '../../tools/fixtures/onnxGraph';
import { fixtureVocabSize, writeFixtureModel, writeModelFolder, type TinyDecoderSpec } from '../../tools/fixtures/tinyDecoder';
import { fixtureModel, scratchDir } from '../helpers/fixtures';

const BASE = { tokenizer: 'llama2' as const };
const V = fixtureVocabSize('llama2');
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many does she have?\nA:';
const RAW: EnsembleOptions = { rawPrompt: true, maxNewTokens: 12 };
const QWEN = { tokenizer: 'qwen3' as const, hiddenSize: 16, seed: 5, logitScale: 2 };
const MISTRAL = { tokenizer: 'llama2' as const, seed: 6, logitScale: 2 };

/** A copy of a good model folder that a case may damage. */
function damagedCopy(spec: Parameters<typeof fixtureModel>[0] = BASE): string {
  const dir = scratchDir('bad');
  cpSync(fixtureModel(spec), dir, { recursive: true });
  return dir;
}

/** Minimal graph: logits = embed(input_ids) · W, plus whatever `extra` adds. */
function oddModel(extra: (g: GraphBuilder) => void, opts: { logitsName?: string; width?: number; symbolicWidth?: boolean } = {}): string {
  const g = new GraphBuilder();
  const rand = seededRandom(3);
  const ids = g.input('input_ids', DT.int64, ['batch', 'seq']);
  g.input('attention_mask', DT.int64, ['batch', 'total']);
  const width = opts.width ?? V;
  const name = opts.logitsName ?? 'logits';
  g.o('MatMul', [g.o('Gather', [g.floatTensor(randomMatrix(rand, V, 2, 1), [V, 2]), ids], { axis: 0 }), g.floatTensor(randomMatrix(rand, 2, width, 1), [2, width])], {}, name);
  g.output(name, DT.float, ['batch', 'seq', opts.symbolicWidth ? 'vocab' : width]);
  extra(g);
  return writeModelFolder(scratchDir('odd'), {
    tokenizer: 'llama2',
    onnx: { 'model.onnx': encodeModel(g.toGraph('odd')) },
    config: { model_type: 'llama', num_hidden_layers: 1, num_attention_heads: 1, hidden_size: 2, vocab_size: width },
  });
}

/**
 * A real decoder that breaks once the sequence is longer than `limit` tokens: its logits turn
 * NaN (sqrt of a negative number), or onnxruntime itself fails (a Gather index out of bounds).
 */
function failingDecoder(limit: number, how: 'nan' | 'throw'): string {
  const extraLogits: TinyDecoderSpec['extraLogits'] = (g, io) => {
    if (how === 'nan') {
      const room = g.o('Cast', [g.o('Sub', [g.int64Tensor([limit], []), io.tLen])], { to: DT.float });
      return g.o('Mul', [g.o('Sqrt', [room]), g.floatScalar(0)]);
    }
    const table = g.floatTensor(new Float32Array(limit), [limit]);
    return g.o('Gather', [table, g.o('Sub', [io.tLen, g.int64Tensor([1], [])])], { axis: 0 });
  };
  const key = `${how}-${limit}`;
  let dir = failing.get(key);
  if (!dir) {
    dir = writeFixtureModel(scratchDir(`failing-${key}`), { ...MISTRAL, seed: 31, cache: 'kv', extraLogits });
    failing.set(key, dir);
  }
  return dir;
}
const failing = new Map<string, string>();

interface BadInput {
  /** What is wrong. */
  name: string;
  /** The stable code the error must carry. */
  code: SafeEnsembleErrorCode;
  /** The message must name the problem (and usually the fix). */
  message: RegExp;
  /** Provokes the error; models it loads go through `own` so the test can free them. */
  run: (own: <T extends CausalLM | SafeEnsemble | { dispose(): Promise<void> }>(x: T) => T) => Promise<unknown> | unknown;
}

const folder = (name: string, damage: (dir: string) => void, code: SafeEnsembleErrorCode, message: RegExp): BadInput => ({
  name,
  code,
  message,
  run: () => {
    const dir = damagedCopy();
    damage(dir);
    return loadModel(dir);
  },
});

/** The ensemble of two good models most ensemble-level cases use. */
async function pair(own: BadInput['run'] extends (o: infer O) => unknown ? O : never, extra: Array<string> = []): Promise<SafeEnsemble> {
  const models = [await loadModel(fixtureModel(QWEN)), await loadModel(fixtureModel(MISTRAL)), ...(await Promise.all(extra.map((d) => loadModel(d))))];
  return own(new SafeEnsemble(models));
}

const loadOption = (field: string, value: unknown, message: RegExp): BadInput => ({
  name: `load option ${field} = ${describeValue(value)}`,
  code: 'INVALID_ARGUMENT',
  message,
  run: () => loadModel(fixtureModel(BASE), { [field]: value } as never),
});

/** Rewrites fields of a copied folder's config.json. */
function patchConfig(dir: string, fields: Record<string, unknown>): void {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, ...fields }));
}

/** A copy of the `graph` fixture's folder with the tokenizer files of the `tokenizer` fixture. */
function withTokenizerOf(graph: Parameters<typeof fixtureModel>[0], tokenizer: Parameters<typeof fixtureModel>[0]): string {
  const dir = damagedCopy(graph);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(fixtureModel(tokenizer), f), join(dir, f));
  return dir;
}

const knob = (field: string, value: unknown, message: RegExp): BadInput => ({
  name: `knob ${field} = ${JSON.stringify(value) ?? String(value)}`,
  code: 'INVALID_ARGUMENT',
  message,
  run: () => canary.generate(PROMPT, { ...RAW, ...(field.startsWith('sharpening.') ? { sharpening: { [field.slice(11)]: value } } : { [field]: value }) } as EnsembleOptions),
});

/** A good ensemble loaded before all cases; it must keep answering exactly as before each of them. */
let canary: SafeEnsemble;

const CASES: BadInput[] = [
  // Model folders.
  { name: 'missing folder', code: 'MODEL_NOT_FOUND', message: /does not exist.*folder with config\.json/, run: () => loadModel('./no/such/model') },
  folder('missing config.json', (d) => rmSync(join(d, 'config.json')), 'MODEL_FILE_MISSING', /config\.json not found/),
  folder('empty config.json', (d) => writeFileSync(join(d, 'config.json'), ''), 'MODEL_FILE_INVALID', /config\.json/),
  folder('config.json that is not JSON', (d) => writeFileSync(join(d, 'config.json'), '{ not json'), 'MODEL_FILE_INVALID', /config\.json is not a valid JSON object/),
  folder('missing tokenizer.json', (d) => rmSync(join(d, 'tokenizer.json')), 'MODEL_FILE_MISSING', /tokenizer\.json not found/),
  folder('corrupt tokenizer.json', (d) => writeFileSync(join(d, 'tokenizer.json'), '{"version": "1.0", "model": 5'), 'MODEL_FILE_INVALID', /tokenizer\.json/),
  folder('no ONNX file', (d) => rmSync(join(d, 'onnx', 'model.onnx')), 'MODEL_FILE_MISSING', /no ONNX model file.*no \.onnx files.*dtype/),
  { name: 'ONNX file of another dtype', code: 'MODEL_FILE_MISSING', message: /model_q4\.onnx.*it has model\.onnx/, run: () => loadModel(fixtureModel(BASE), { dtype: 'q4' }) },
  folder('truncated .onnx', (d) => truncateSync(join(d, 'onnx', 'model.onnx'), Math.floor(readFileSync(join(d, 'onnx', 'model.onnx')).length / 3)), 'MODEL_FILE_INVALID', /could not load .*model\.onnx.*truncated/),
  folder('empty .onnx', (d) => writeFileSync(join(d, 'onnx', 'model.onnx'), ''), 'MODEL_FILE_INVALID', /model\.onnx/),
  {
    name: 'missing external data',
    code: 'MODEL_FILE_MISSING',
    message: /external weight data.*onnx_data/,
    run: () => {
      const dir = damagedCopy({ ...BASE, externalData: true });
      rmSync(join(dir, 'onnx', 'model.onnx_data'));
      return loadModel(dir);
    },
  },
  // Graphs the runtime cannot drive.
  { name: 'graph without logits', code: 'UNSUPPORTED_GRAPH', message: /no "logits" output.*hidden_states/, run: () => loadModel(oddModel(() => {}, { logitsName: 'hidden_states' })) },
  { name: 'key cache without value cache', code: 'UNSUPPORTED_GRAPH', message: /layer 0 has a key cache input but no value/, run: () => loadModel(oddModel((g) => g.input('past_key_values.0.key', DT.float, ['batch', 1, 'past', 2]))) },
  { name: 'recurrent state inputs', code: 'UNSUPPORTED_GRAPH', message: /recurrent\/state inputs \(past_ssm_state\.0\)/, run: () => loadModel(oddModel((g) => g.input('past_ssm_state.0', DT.float, ['batch', 4, 2]))) },
  { name: 'logits narrower than the tokenizer vocabulary', code: 'UNSUPPORTED_GRAPH', message: /ids up to 31999 \(32000 ids, added tokens included\) but the model's logits have only 1000 columns.*belong to another model/, run: () => loadModel(oddModel(() => {}, { width: 1000 })) },
  // A model folder with another model's tokenizer files.
  { name: 'Qwen-vocabulary graph with the Mistral tokenizer', code: 'UNSUPPORTED_GRAPH', message: /bad-.*logits have 151669 columns but the tokenizer has only 32000 ids \(padding of up to 1024 rows is accepted\).*belong to another model/, run: () => loadModel(withTokenizerOf(QWEN, MISTRAL)) },
  { name: 'Mistral-vocabulary graph with the Qwen tokenizer', code: 'UNSUPPORTED_GRAPH', message: /ids up to 151668 \(151669 ids.*logits have only 32000 columns/, run: () => loadModel(withTokenizerOf(MISTRAL, QWEN)) },
  { name: 'symbolic logits width, measured at load', code: 'UNSUPPORTED_GRAPH', message: /ids up to 31999.*logits have only 1000 columns/, run: () => loadModel(oddModel(() => {}, { width: 1000, symbolicWidth: true })) },
  // Load options.
  { name: 'unknown dtype', code: 'INVALID_ARGUMENT', message: /unknown dtype "fp8"/, run: () => loadModel(fixtureModel(BASE), { dtype: 'fp8' as never }) },
  loadOption('threads', -1, /threads: must be a positive integer up to 1024, got -1/),
  loadOption('threads', Number.NaN, /threads: must be a positive integer up to 1024, got NaN/),
  loadOption('threads', 'two', /threads: must be a positive integer up to 1024, got "two"/),
  loadOption('threads', 100000, /threads: must be a positive integer up to 1024, got 100000/),
  loadOption('executionProviders', ['bogus'], /executionProviders\[0\]: unknown execution provider "bogus"; use one of cpu, cuda/),
  loadOption('executionProviders', 'cuda', /executionProviders: must be an array/),
  loadOption('maxPositions', Number.NaN, /maxPositions: must be a positive integer up to \d+, got NaN/),
  loadOption('maxPositions', 0, /maxPositions: must be a positive integer/),
  loadOption('maxPositions', -5, /maxPositions: must be a positive integer.*got -5/),
  loadOption('maxPositions', '2048', /maxPositions: must be a positive integer.*got "2048"/),
  loadOption('maxPositions', Number.POSITIVE_INFINITY, /maxPositions: must be a positive integer.*got Infinity/),
  loadOption('deviceId', -1, /deviceId: must be a GPU index/),
  loadOption('graphOptimizationLevel', 'max', /graphOptimizationLevel: must be 'disabled', 'basic', 'extended' or 'all'/),
  loadOption('thread', 2, /thread: is not a load option; valid ones are executionProviders/),
  loadOption('checkLogits', 'yes', /checkLogits: must be a boolean/),
  folder('negative max_position_embeddings', (d) => patchConfig(d, { max_position_embeddings: -1 }), 'MODEL_FILE_INVALID', /config\.json: "max_position_embeddings" must be a positive integer, got -1/),
  folder('zero max_position_embeddings', (d) => patchConfig(d, { max_position_embeddings: 0 }), 'MODEL_FILE_INVALID', /"max_position_embeddings" must be a positive integer, got 0/),
  folder('string max_position_embeddings', (d) => patchConfig(d, { max_position_embeddings: '2048' }), 'MODEL_FILE_INVALID', /"max_position_embeddings" must be a positive integer, got "2048"/),
  {
    name: 'LangChain: bad load options fail at construction',
    code: 'INVALID_ARGUMENT',
    message: /threads: must be a positive integer/,
    run: () => new SafeEnsembleLLM({ models: [fixtureModel(QWEN), fixtureModel(MISTRAL)], loadOptions: { threads: -1 } }),
  },
  {
    name: 'LangChain: a bad per-model load option fails at construction',
    code: 'INVALID_ARGUMENT',
    message: /executionProviders\[0\]: unknown execution provider "gpu"/,
    run: () => new SafeEnsembleChatModel({ models: [fixtureModel(QWEN), { source: fixtureModel(MISTRAL), executionProviders: ['gpu' as never] }] }),
  },
  { name: 'CUDA requested where it is unavailable', code: 'EXECUTION_PROVIDER_UNAVAILABLE', message: /"cuda" is unavailable.*ONNXRUNTIME_NODE_INSTALL=cuda12.*fallbackToCpu/, run: () => loadModel(fixtureModel(BASE), { executionProviders: ['cuda'] }) },
  // Tokenizers.
  {
    name: 'tokenizer without EOS',
    code: 'TOKENIZER_INVALID',
    message: /defines no end-of-sequence token.*eos_token/,
    run: async (own) => {
      const dir = damagedCopy();
      const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
      delete config.eos_token;
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
      const noEos = own(await loadModel(dir));
      const other = own(await loadModel(fixtureModel(QWEN)));
      return new SafeEnsemble([other, noEos]);
    },
  },
  { name: 'chat messages for a model without chat template', code: 'TOKENIZER_INVALID', message: /has no chat template.*chat_template\.jinja/, run: () => canary.generate([{ role: 'user', content: 'Hi' }]) },
  // Inputs.
  { name: 'empty prompt', code: 'INVALID_ARGUMENT', message: /prompt is empty/, run: () => canary.generate('  \n ') },
  { name: 'empty message list', code: 'INVALID_ARGUMENT', message: /non-empty array of chat messages/, run: () => canary.generate([]) },
  {
    name: 'prompt longer than the context (no forward pass runs)',
    code: 'CONTEXT_OVERFLOW',
    message: /prompt is \d+ tokens.*beyond its context of 64.*Shorten the prompt/,
    run: async (own) => {
      const small = own(new SafeEnsemble([await loadModel(fixtureModel(QWEN)), await loadModel(fixtureModel(MISTRAL), { maxPositions: 64 })]));
      try {
        return await small.generate(PROMPT.repeat(6), RAW);
      } finally {
        expect(small.models.map((m) => m.length)).toEqual([0, 0]);
      }
    },
  },
  // Knobs: out of range or of the wrong type.
  knob('strategy', 'fastest', /strategy: must be one of 'safe', 'single', 'every-token', 'gac-threshold'/),
  knob('baseEnsembler', 'mean', /baseEnsembler: must be one of 'unite', 'gac'/),
  knob('unionTopK', 0, /unionTopK: must be an integer from 1 to 1000, got 0/),
  knob('topK', 2.5, /topK: must be an integer/),
  knob('temperature', -1, /temperature: must be 0 \(greedy\) or a number from 1e-5 to 100, got -1/),
  knob('topP', 0, /topP: must be a number above 0 up to 1, got 0/),
  knob('seed', 'lucky', /seed: must be an integer from 0 to/),
  knob('rejectionRule', 'paper', /rejectionRule: must be one of 'residual', 'ensemble'/),
  knob('draftLength', 0, /draftLength: must be an integer from 1 to 64/),
  knob('draftLength', '5', /draftLength: must be an integer/),
  knob('consensusThreshold', 1.5, /consensusThreshold: must be a number from 0 to 1, got 1\.5/),
  knob('consensusThreshold', Number.NaN, /consensusThreshold: must be a number from 0 to 1, got NaN/),
  knob('unionTopK', Number.POSITIVE_INFINITY, /unionTopK: must be an integer from 1 to 1000, got Infinity/),
  knob('sharpening', [], /sharpening: must be an object like \{ method, below, lambda \}, got \[\]/),
  knob('sharpening', { methods: 'none' }, /sharpening\.methods: is not a sharpening option/),
  knob('unanimitySkip', 'yes', /unanimitySkip: must be true or false/),
  knob('stabilityGate', 1, /stabilityGate: must be true or false/),
  knob('gacDrafterGate', -0.1, /gacDrafterGate: must be a number from 0 to 1/),
  knob('sharpening.method', 'cubic', /sharpening\.method: must be one of 'heuristic', 'geometric', 'none'/),
  knob('sharpening.below', 2, /sharpening\.below: must be a number from 0 to 1/),
  knob('sharpening.lambda', -1, /sharpening\.lambda: must be a number from 0 to 1/),
  knob('weights', [1], /weights: must be 2 positive numbers/),
  knob('weights', [1, -1], /weights: must be 2 positive numbers/),
  knob('maxNewTokens', 0, /maxNewTokens: must be an integer from 1/),
  knob('stop', [''], /stop: must be an array of non-empty strings/),
  knob('signal', { aborted: 'no' }, /signal: must be an AbortSignal/),
  knob('trace', 'on', /trace: must be true or false/),
  knob('allowSpecialTokens', 'no', /allowSpecialTokens: must be true or false/),
  knob('rawPrompt', 'yes', /rawPrompt: must be true or false/),
  knob('recomputeCaches', 1, /recomputeCaches: must be true or false/),
  knob('sharpening', 'none', /sharpening: must be an object like \{ method, below, lambda \}/),
  knob('tools', { calculator: true }, /tools: must be an array/),
  knob('temperatur', 0, /temperatur: is not a SAFE option; valid options are strategy/),
  { name: 'drafter index out of range', code: 'INVALID_ARGUMENT', message: /drafter: index 2 is out of range \(0\.\.1\)/, run: () => new SafeEnsemble(canary.models, { drafter: 2 }) },
  { name: 'K = 1 with strategy safe', code: 'INVALID_ARGUMENT', message: /'safe' needs at least two models; with one model use strategy 'single'/, run: async (own) => own(new SafeEnsemble([await loadModel(fixtureModel(QWEN))])).generate(PROMPT, RAW) },
  { name: 'duplicate model folder', code: 'INVALID_ARGUMENT', message: /is listed twice; list each model once/, run: () => SafeEnsemble.load({ models: [fixtureModel(QWEN), fixtureModel(MISTRAL), fixtureModel(QWEN)] }) },
  { name: 'duplicate model instance', code: 'INVALID_ARGUMENT', message: /appears twice.*load it twice/, run: async (own) => { const m = own(await loadModel(fixtureModel(QWEN))); return new SafeEnsemble([m, m]); } },
  { name: 'LangChain temperature that is not a number', code: 'INVALID_ARGUMENT', message: /temperature: must be 0 \(greedy\) or a number from 1e-5 to 100, got "hot"/, run: async (own) => own(new SafeEnsembleLLM({ models: [fixtureModel(QWEN), fixtureModel(MISTRAL)], temperature: 'hot' as never })).invoke(PROMPT) },
  { name: 'LangChain knob out of range', code: 'INVALID_ARGUMENT', message: /consensusThreshold: must be a number from 0 to 1/, run: async (own) => own(new SafeEnsembleChatModel({ models: [fixtureModel(QWEN), fixtureModel(MISTRAL)] })).invoke([new HumanMessage('Hi')], { consensusThreshold: 7 } as never) },
  // Lifetimes.
  { name: 'ensemble used after dispose()', code: 'DISPOSED', message: /SafeEnsemble was used after dispose\(\)/, run: async (own) => { const e = await pair(own); await e.dispose(); return e.generate(PROMPT, RAW); } },
  { name: 'model used after dispose()', code: 'DISPOSED', message: /used after dispose\(\).*loadModel/, run: async () => { const m = await loadModel(fixtureModel(BASE)); await m.dispose(); return m.forward([1]); } },
  { name: 'disposed model given to an ensemble', code: 'DISPOSED', message: /used after dispose\(\)/, run: async (own) => { const m = await loadModel(fixtureModel(BASE)); await m.dispose(); return new SafeEnsemble([own(await loadModel(fixtureModel(QWEN))), m]); } },
  // Runtime calls.
  { name: 'token id outside the vocabulary', code: 'INVALID_ARGUMENT', message: /token id 32005 is outside the vocabulary/, run: async (own) => own(await loadModel(fixtureModel(BASE))).forward([V + 5]) },
  { name: 'forward beyond the context', code: 'CONTEXT_OVERFLOW', message: /9 tokens exceed the model's context of 8/, run: async (own) => own(await loadModel(fixtureModel(BASE), { maxPositions: 8 })).forward([1, 2, 3, 4, 5, 6, 7, 8, 9]) },
  // Models that fail while generating.
  {
    name: 'NaN logits mid-generation name the model and the step',
    code: 'INFERENCE_FAILED',
    message: /failing-nan-40.*non-finite logits \(NaN\/Inf\) at position \d+ \(step [1-9]\d*\)/,
    run: async (own) => (await pair(own, [failingDecoder(40, 'nan')])).generate(PROMPT, { ...RAW, maxNewTokens: 30 }),
  },
  {
    name: 'a model that throws mid-generation',
    code: 'INFERENCE_FAILED',
    message: /failing-throw-40.*onnxruntime failed at step [1-9]\d* \(sequence length 4\d\)/,
    run: async (own) => (await pair(own, [failingDecoder(40, 'throw')])).generate(PROMPT, { ...RAW, maxNewTokens: 30 }),
  },
];

describe('bad inputs: typed errors, and nothing else breaks', () => {
  let reference: string;
  let sessions: number;
  beforeAll(async () => {
    canary = await SafeEnsemble.load({ models: [fixtureModel(QWEN), fixtureModel(MISTRAL)] });
    reference = (await canary.generate(PROMPT, { ...RAW, maxNewTokens: 24 })).text;
    sessions = liveSessionCount();
  });
  afterAll(() => canary.dispose());

  it('covers at least 25 bad inputs', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  it.each(CASES.map((c) => [c.name, c]))('%s', async (_name, c) => {
    const owned: Array<{ dispose(): Promise<void> }> = [];
    const own = <T extends { dispose(): Promise<void> }>(x: T): T => (owned.push(x), x);
    let error: unknown = null;
    try {
      await c.run(own as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SafeEnsembleError);
    const e = error as SafeEnsembleError;
    expect({ code: e.code, name: e.name }).toMatchObject({ code: c.code });
    expect(e.message).toMatch(c.message);
    // Ensembles own their models; disposing twice is harmless.
    for (const x of owned.reverse()) await x.dispose();
    // Other instances and the session count are untouched.
    expect((await canary.generate(PROMPT, { ...RAW, maxNewTokens: 24 })).text).toBe(reference);
    expect(liveSessionCount()).toBe(sessions);
  });
});

describe('after a model fails mid-generation', () => {
  it.each(['nan', 'throw'] as const)('(%s) the same ensemble still answers shorter requests exactly like a fresh one', async (how) => {
    const flaky = await SafeEnsemble.load({ models: [fixtureModel(QWEN), fixtureModel(MISTRAL), failingDecoder(40, how)] });
    await expect(flaky.generate(PROMPT, { ...RAW, maxNewTokens: 30 })).rejects.toMatchObject({ code: 'INFERENCE_FAILED' });
    const after = await flaky.generate(PROMPT, { ...RAW, maxNewTokens: 4 });
    const fresh = await SafeEnsemble.load({ models: [fixtureModel(QWEN), fixtureModel(MISTRAL), failingDecoder(40, how)] });
    expect(after).toMatchObject({ text: (await fresh.generate(PROMPT, { ...RAW, maxNewTokens: 4 })).text });
    expect(after.stats.generatedTokens).toBeGreaterThan(0);
    await Promise.all([flaky.dispose(), fresh.dispose()]);
  });

  it('CUDA with fallbackToCpu warns once and runs on CPU', async () => {
    const warnings: string[] = [];
    const lm = await loadModel(fixtureModel(BASE), { executionProviders: ['cuda'], fallbackToCpu: true, onWarning: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/Falling back to CPU/);
    expect(lm.info.providers).toEqual({ providers: ['cpu'], fellBack: true });
    expect((await lm.forward([1, 2, 3])).rows).toBe(3);
    await lm.dispose();
  });
});
