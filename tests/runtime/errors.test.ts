import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DisposedError,
  ExecutionProviderError,
  InferenceError,
  InvalidArgumentError,
  liveSessionCount,
  loadModel,
  ModelFileInvalidError,
  ModelFileMissingError,
  ModelNotFoundError,
  SafeEnsembleError,
  UnsupportedGraphError,
} from '../../src/index';
import { DT, encodeModel, GraphBuilder, randomMatrix, seededRandom } from '../../tools/fixtures/onnxGraph';
import { fixtureVocabSize, writeModelFolder } from '../../tools/fixtures/tinyDecoder';
import { fixtureModel, scratchDir } from '../helpers/fixtures';

const BASE = { tokenizer: 'llama2' as const };
const V = fixtureVocabSize('llama2');

/** A copy of a good model folder that a test may damage. */
function damagedCopy(): string {
  const dir = scratchDir('bad');
  cpSync(fixtureModel(BASE), dir, { recursive: true });
  return dir;
}

/** Minimal graph: logits = embed(input_ids) · W, plus whatever `extra` adds. */
function oddModel(extra: (g: GraphBuilder) => void, opts: { logitsName?: string; width?: number; nan?: boolean } = {}): string {
  const g = new GraphBuilder();
  const rand = seededRandom(3);
  const ids = g.input('input_ids', DT.int64, ['batch', 'seq']);
  g.input('attention_mask', DT.int64, ['batch', 'total']);
  const width = opts.width ?? V;
  const w = randomMatrix(rand, 2, width, 1);
  if (opts.nan) w[5] = NaN;
  const name = opts.logitsName ?? 'logits';
  g.o('MatMul', [g.o('Gather', [g.floatTensor(randomMatrix(rand, V, 2, 1), [V, 2]), ids], { axis: 0 }), g.floatTensor(w, [2, width])], {}, name);
  g.output(name, DT.float, ['batch', 'seq', width]);
  extra(g);
  return writeModelFolder(scratchDir('odd'), {
    tokenizer: 'llama2',
    onnx: { 'model.onnx': encodeModel(g.toGraph('odd')) },
    config: { model_type: 'llama', num_hidden_layers: 1, num_attention_heads: 1, hidden_size: 2, vocab_size: width },
  });
}

/** Asserts a typed error with a code and a message that matches. */
async function expectError(p: Promise<unknown>, cls: new (...a: never[]) => SafeEnsembleError, message: RegExp): Promise<void> {
  const error = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(cls);
  expect(error).toBeInstanceOf(SafeEnsembleError);
  expect((error as SafeEnsembleError).code).toMatch(/^[A-Z_]+$/);
  expect((error as Error).message).toMatch(message);
}

describe('loadModel rejects bad input with typed, actionable errors', () => {
  it('missing folder', async () => {
    await expectError(loadModel('./no/such/model'), ModelNotFoundError, /does not exist.*folder with config\.json/);
  });

  it('missing config.json', async () => {
    const dir = damagedCopy();
    rmSync(join(dir, 'config.json'));
    await expectError(loadModel(dir), ModelFileMissingError, /config\.json not found/);
  });

  it('config.json that is not JSON', async () => {
    const dir = damagedCopy();
    writeFileSync(join(dir, 'config.json'), '{ not json');
    await expectError(loadModel(dir), ModelFileInvalidError, /config\.json is not a valid JSON object/);
  });

  it('no tokenizer', async () => {
    const dir = damagedCopy();
    rmSync(join(dir, 'tokenizer.json'));
    await expectError(loadModel(dir), ModelFileMissingError, /tokenizer\.json not found/);
  });

  it('no ONNX file, listing what exists', async () => {
    const dir = damagedCopy();
    rmSync(join(dir, 'onnx', 'model.onnx'));
    await expectError(loadModel(dir), ModelFileMissingError, /no ONNX model file.*no \.onnx files.*dtype/);
    await expectError(loadModel(fixtureModel(BASE), { dtype: 'q4' }), ModelFileMissingError, /model_q4\.onnx.*it has model\.onnx/);
  });

  it('truncated .onnx', async () => {
    const dir = damagedCopy();
    const file = join(dir, 'onnx', 'model.onnx');
    truncateSync(file, Math.floor(readFileSync(file).length / 3));
    await expectError(loadModel(dir), ModelFileInvalidError, /could not load .*model\.onnx.*truncated/);
  });

  it('missing external data', async () => {
    const dir = scratchDir('ext');
    cpSync(fixtureModel({ ...BASE, externalData: true }), dir, { recursive: true });
    rmSync(join(dir, 'onnx', 'model.onnx_data'));
    await expectError(loadModel(dir), ModelFileMissingError, /external weight data.*onnx_data/);
  });

  it('graph without logits', async () => {
    await expectError(loadModel(oddModel(() => {}, { logitsName: 'hidden_states' })), UnsupportedGraphError, /no "logits" output.*hidden_states/);
  });

  it('unknown cache layout', async () => {
    const dir = oddModel((g) => g.input('past_key_values.0.key', DT.float, ['batch', 1, 'past', 2]));
    await expectError(loadModel(dir), UnsupportedGraphError, /layer 0 has a key cache input but no value/);
  });

  it('recurrent state inputs', async () => {
    const dir = oddModel((g) => g.input('past_ssm_state.0', DT.float, ['batch', 4, 2]));
    await expectError(loadModel(dir), UnsupportedGraphError, /recurrent\/state inputs \(past_ssm_state\.0\)/);
  });

  it('logits narrower than the tokenizer vocabulary', async () => {
    await expectError(loadModel(oddModel(() => {}, { width: 1000 })), UnsupportedGraphError, /logits have 1000 columns but the tokenizer has 32000 ids/);
  });

  it('CUDA requested where it is unavailable', async () => {
    await expectError(loadModel(fixtureModel(BASE), { executionProviders: ['cuda'] }), ExecutionProviderError, /"cuda" is unavailable.*ONNXRUNTIME_NODE_INSTALL=cuda12.*fallbackToCpu/);
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

  it('unknown dtype', async () => {
    await expectError(loadModel(fixtureModel(BASE), { dtype: 'fp8' as never }), InvalidArgumentError, /unknown dtype "fp8"/);
  });

  it('NaN logits name the model and position', async () => {
    const lm = await loadModel(oddModel(() => {}, { nan: true }));
    await expectError(lm.forward([5, 6]), InferenceError, /non-finite logits \(NaN\/Inf\) at position/);
    expect(lm.length).toBe(0); // nothing partial survives
    await lm.dispose();
  });

  it('forward after dispose, bad ids, and context overflow', async () => {
    const lm = await loadModel(fixtureModel(BASE), { maxPositions: 8 });
    await expectError(lm.forward([]), InvalidArgumentError, /at least one token id/);
    await expectError(lm.forward([V + 5]), InvalidArgumentError, /outside the vocabulary/);
    await expectError(lm.forward([1, 2, 3, 4, 5, 6, 7, 8, 9]), SafeEnsembleError, /9 tokens exceed the model's context of 8/);
    expect(lm.length).toBe(0);
    await lm.dispose();
    await lm.dispose(); // idempotent
    await expectError(lm.forward([1]), DisposedError, /used after dispose\(\)/);
    expect(() => lm.crop(0)).toThrow(DisposedError);
  });

  it('leaks no sessions when loading fails', async () => {
    const before = liveSessionCount();
    await loadModel(oddModel(() => {}, { logitsName: 'nope' })).catch(() => undefined);
    await loadModel(oddModel(() => {}, { width: 10 })).catch(() => undefined);
    expect(liveSessionCount()).toBe(before);
  });
});
