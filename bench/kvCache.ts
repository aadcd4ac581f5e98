/**
 * KV-cache benchmark: decode-step and rollback time at a short and a long context, with the
 * incremental cache (the default load-time graph rewrite) and with the graph as exported, on a
 * generated decoder of a real small-LLM shape (SmolLM2-135M-like, Mistral 32k vocabulary).
 *
 *   npm run bench:kv -- [--contexts 128,2048] [--steps 8] [--rounds 3]
 *
 * Both models are loaded inline with one thread; blocks alternate between them (AB/BA), a full
 * GC before each block; medians over every step.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fullGc } from '../src/cli/benchMethod.js';
import { loadModel, type CausalLM } from '../src/index.js';
import { writeFixtureModel } from '../tools/fixtures/tinyDecoder.js';

const { values } = parseArgs({
  options: {
    contexts: { type: 'string', default: '128,2048' },
    steps: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});
const contexts = values.contexts!.split(',').map(Number);
const steps = Number(values.steps);
const rounds = Number(values.rounds);

const dir = mkdtempSync(join(tmpdir(), 'lse-bench-kv-'));
writeFixtureModel(dir, { tokenizer: 'llama2', hiddenSize: 576, numLayers: 30, numHeads: 9, numKeyValueHeads: 3, intermediateSize: 1536, gatedMlp: true, maxPositions: Math.max(...contexts) + 64 });
const models: Record<'exported' | 'incremental', CausalLM> = {
  exported: await loadModel(dir, { execution: 'inline', threads: 1, incrementalCache: false }),
  incremental: await loadModel(dir, { execution: 'inline', threads: 1 }),
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

console.log('| context | cache | one-token step (ms) | crop by one token (ms) |');
console.log('|---:|---|---:|---:|');
for (const ctx of contexts) {
  const prefix = Array.from({ length: ctx }, (_, i) => 100 + (i % 500));
  const stepMs: Record<string, number[]> = { exported: [], incremental: [] };
  const cropMs: Record<string, number[]> = { exported: [], incremental: [] };
  for (const lm of Object.values(models)) {
    lm.reset();
    await lm.forward(prefix, { logits: 'last' });
  }
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? (['exported', 'incremental'] as const) : (['incremental', 'exported'] as const);
    for (const name of order) {
      const lm = models[name];
      fullGc();
      for (let i = 0; i < steps; i++) {
        let t = performance.now();
        await lm.forward([7 + i], { logits: 'last' });
        stepMs[name]!.push(performance.now() - t);
        t = performance.now();
        lm.crop(ctx);
        cropMs[name]!.push(performance.now() - t);
      }
    }
  }
  for (const name of ['exported', 'incremental'] as const) {
    console.log(`| ${ctx} | ${name === 'exported' ? 'as exported (present.* fetched, crop copies)' : 'incremental (new rows fetched, crop O(1))'} | ${median(stepMs[name]!).toFixed(1)} | ${median(cropMs[name]!).toFixed(3)} |`);
  }
}
await Promise.all(Object.values(models).map((m) => m.dispose()));
rmSync(dir, { recursive: true, force: true });
