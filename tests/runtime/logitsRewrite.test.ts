/**
 * The logits_to_keep rewrite: a graph whose LM head is a plain MatMul gets a `logits_to_keep`
 * input at load, so a prefill computes only the rows asked for, with bit-identical values;
 * graphs that already have one, or whose head is something else, run as exported.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/index';
import { addLogitsToKeep } from '../../src/runtime/logitsRewrite';
import { writeScriptedModel } from '../../tools/fixtures/scriptedDecoder';
import type { FixtureModelOptions } from '../../tools/fixtures/tinyDecoder';
import { fixtureModel, scratchDir } from '../helpers/fixtures';

const VARIANTS: Array<[string, FixtureModelOptions]> = [
  ['KV cache', { tokenizer: 'qwen3', hiddenSize: 16, seed: 51, logitScale: 2 }],
  ['merged decoder', { tokenizer: 'llama2', seed: 52, cache: 'merged' }],
  ['no KV cache', { tokenizer: 'llama2', seed: 53, cache: 'none' }],
  ['float16 cache', { tokenizer: 'llama2', seed: 54, cacheDType: 'float16' }],
];

describe.each(VARIANTS)('logits_to_keep added at load: %s', (_name, options) => {
  it('computes only the kept rows, equal to the same rows of the exported graph', async () => {
    const dir = fixtureModel(options);
    const exported = await loadModel(dir, { logitsToKeep: false, execution: 'inline' });
    const rewritten = await loadModel(dir, { execution: 'inline' });
    try {
      expect(exported.info.graph.logitsToKeepInput).toBeNull();
      expect(rewritten.info.graph.logitsToKeepInput).toBe('logits_to_keep');
      // The onnxruntime runs of the rewritten model return only the kept rows.
      const session = (rewritten as unknown as { backend: { session: { run: (...a: unknown[]) => Promise<Record<string, { dims: number[] }>> } } }).backend.session;
      const run = session.run.bind(session);
      const returnedRows: number[] = [];
      session.run = async (...args) => {
        const out = await run(...args);
        returnedRows.push(out.logits!.dims[1]!);
        return out;
      };
      const ids = exported.tokenizer.encode('Mia has 37 marbles. She finds 25 more marbles in the garden. How many now?');
      for (const rows of [1, 3, ids.length] as const) {
        exported.reset();
        rewritten.reset();
        const a = await exported.forward(ids, { logits: rows });
        const b = await rewritten.forward(ids, { logits: rows });
        expect(b.data).toEqual(a.data);
        expect(returnedRows.pop()).toBe(rows);
        const next = a.argmax(-1);
        expect((await rewritten.forward([next, 7], { logits: 'all' })).data).toEqual((await exported.forward([next, 7], { logits: 'all' })).data);
      }
    } finally {
      await exported.dispose();
      await rewritten.dispose();
    }
  });
});

describe('graphs the logits rewrite leaves alone', () => {
  it('keeps a logits_to_keep input the graph already has', () => {
    const dir = fixtureModel({ tokenizer: 'llama2', seed: 55, logitsToKeep: 'num_logits_to_keep' });
    expect(addLogitsToKeep(readFileSync(join(dir, 'onnx', 'model.onnx')))).toBeNull();
  });

  it('leaves a head that is not a plain MatMul (logits = head + scripted logits)', async () => {
    const dir = await writeScriptedModel(scratchDir('keep-scripted'), { tokenizer: 'llama2', scripts: [{ prompt: 'Q: hi\nA:', completion: ' Hello.', rawPrompt: true }], compute: { hiddenSize: 16, numLayers: 1, numHeads: 2, numKeyValueHeads: 1 } });
    expect(addLogitsToKeep(readFileSync(join(dir, 'onnx', 'model.onnx')))).toBeNull();
    const lm = await loadModel(dir);
    try {
      expect(lm.info.graph.logitsToKeepInput).toBeNull();
    } finally {
      await lm.dispose();
    }
  });
});
