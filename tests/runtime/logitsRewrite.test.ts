/**
 * The logits_to_keep rewrite: a graph whose LM head is a MatMul or MatMulNBits, bare or
 * followed by row-wise ops (a softcap, a cast), gets a `logits_to_keep` input at load, so a prefill computes only the rows asked for, with bit-identical values;
 * graphs that already have one, or whose head is something else, run as exported.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/index';
import { addLogitsToKeep, keptHeadOps } from '../../src/runtime/logitsRewrite';
import { writeScriptedModel } from '../../tools/fixtures/scriptedDecoder';
import type { FixtureModelOptions } from '../../tools/fixtures/tinyDecoder';
import { fixtureModel, scratchDir } from '../helpers/fixtures';

const VARIANTS: Array<[string, FixtureModelOptions]> = [
  ['KV cache', { tokenizer: 'qwen3', hiddenSize: 16, seed: 51, logitScale: 2 }],
  ['merged decoder', { tokenizer: 'llama2', seed: 52, cache: 'merged' }],
  ['no KV cache', { tokenizer: 'llama2', seed: 53, cache: 'none' }],
  ['float16 cache', { tokenizer: 'llama2', seed: 54, cacheDType: 'float16' }],
  ['merged decoder with the head inside its If', { tokenizer: 'llama2', seed: 59, cache: 'merged', headInIf: true }],
  ['softcapped head (Gemma 2: Div, Tanh, Mul after the MatMul)', { tokenizer: 'llama2', seed: 56, head: 'softcap' }],
  ['MatMulNBits head (q4, blocks of 32)', { tokenizer: 'llama2', seed: 57, hiddenSize: 64, head: 'q4' }],
  ['MatMulNBits head with float16 logits (q4f16-like Cast after it)', { tokenizer: 'qwen3', seed: 58, hiddenSize: 32, head: 'q4', logitsDType: 'float16' }],
  ['dynamically quantized head (q8: DynamicQuantizeLinear, MatMulInteger, scales)', { tokenizer: 'llama2', seed: 60, hiddenSize: 32, head: 'q8' }],
];

describe.each(VARIANTS)('logits_to_keep added at load: %s', (_name, options) => {
  it('computes only the kept rows, equal to the same rows of the exported graph', async () => {
    const dir = fixtureModel(options);
    const exported = await loadModel(dir, { logitsToKeep: false, execution: 'inline' });
    const rewritten = await loadModel(dir, { execution: 'inline' });
    try {
      expect(exported.info.graph.logitsToKeepInput).toBeNull();
      expect(rewritten.info.graph.logitsToKeepInput).toBe('logits_to_keep');
      // The slice feeds the op that first sees the last hidden state (in each branch of an If).
      const heads = keptHeadOps(addLogitsToKeep(readFileSync(join(dir, 'onnx', 'model.onnx')))!);
      const head = { q4: 'MatMulNBits', q8: 'DynamicQuantizeLinear' }[options.head as string] ?? 'MatMul';
      expect(heads).toEqual(options.headInIf ? [head, head] : [head]);
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
        if (options.head === 'q4') {
          // onnxruntime's MatMulNBits takes another kernel for a single row (as every decode
          // step does): the values agree to float rounding (one float16 step where logits are
          // float16: 2^-8 at |logits| < 8), not bit for bit. Several rows: exact.
          const tolerance = rows === 1 ? (options.logitsDType === 'float16' ? 2 ** -8 : 1e-5) : 0;
          let worst = 0;
          for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs(Number(a.data[i]) - Number(b.data[i])));
          expect(worst).toBeLessThanOrEqual(tolerance);
          expect(b.argmax(-1)).toBe(a.argmax(-1));
        } else if (options.head === 'q8' && rows < ids.length) {
          // The quantizer's per-tensor scale is taken over the kept rows, as a decode step takes
          // it over its one row: the kept rows are what the exported graph computes for them alone.
          exported.reset();
          await exported.forward(ids.slice(0, ids.length - rows), { logits: 'last' });
          const alone = await exported.forward(ids.slice(ids.length - rows), { logits: 'all' });
          let worst = 0;
          for (let i = 0; i < alone.data.length; i++) worst = Math.max(worst, Math.abs(alone.data[i]! - b.data[i]!));
          expect(worst).toBeLessThanOrEqual(1e-4);
          for (let r = 0; r < rows; r++) expect(b.argmax(r)).toBe(alone.argmax(r));
        } else expect(b.data).toEqual(a.data);
        expect(returnedRows.pop()).toBe(rows);
        const next = a.argmax(-1);
        const stepA = await exported.forward([next, 7], { logits: 'all' });
        const stepB = await rewritten.forward([next, 7], { logits: 'all' });
        if (options.head === 'q4') expect(stepB.argmax(-1)).toBe(stepA.argmax(-1));
        else expect(stepB.data).toEqual(stepA.data);
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
