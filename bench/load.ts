/**
 * Load time and peak memory of a large model file: `loadModel` (with its load-time rewrites)
 * against onnxruntime's own `InferenceSession.create` on the same file, side by side in one
 * run, each load in its own process (so peak RSS is that load's alone), interleaved over rounds.
 *
 * Needs the build (npm run build) for the worker case.
 *
 *   npm run bench:load                # a ~640 MiB random-weight decoder (hidden 1024, 8 layers, 32k vocabulary)
 *   npm run bench:load -- --external     # the same decoder with its weights in model.onnx_data
 *   npm run bench:load -- --rounds 5 --dir ./models/some-big-model
 *
 * Reports the median wall time and peak RSS of each, loadModel ÷ create, and peak RSS ÷ file size,
 * for loadModel inline and in a worker (the default: the tokenizer loads while the worker creates
 * the session).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fixtureModel } from '../tests/helpers/fixtures.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, dir: { type: 'string' }, child: { type: 'string' }, external: { type: 'boolean', default: false } } });

async function child(kind: string, dir: string): Promise<void> {
  // Modules are imported before the clock starts: the loads are timed, not the imports.
  const ort = await import('onnxruntime-node');
  const { loadModel } = await import('../src/index.js');
  const t0 = performance.now();
  if (kind === 'create') {
    const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), { intraOpNumThreads: 2 });
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ ms, peakMiB: process.resourceUsage().maxRSS / 1024 }));
    await session.release();
  } else if (kind === 'tokenizer') {
    // What loadModel does besides the session: the tokenizer (reported beside the loads).
    const { TextTokenizer } = await import('../src/research.js');
    await TextTokenizer.fromFolder(dir);
    console.log(JSON.stringify({ ms: performance.now() - t0, peakMiB: process.resourceUsage().maxRSS / 1024 }));
  } else {
    // The session on this thread (the worker case is WORKER_CHILD).
    const lm = await loadModel(dir, { execution: 'inline', threads: 2 });
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ ms, peakMiB: process.resourceUsage().maxRSS / 1024 }));
    await lm.dispose();
  }
}

/** The worker-mode load, run by plain Node on dist/ (modules imported before the clock starts). */
const WORKER_CHILD = `
await import('onnxruntime-node');
const { loadModel } = await import(${JSON.stringify(new URL('../dist/esm/index.js', import.meta.url).href)});
const t0 = performance.now();
const lm = await loadModel(process.argv[1], { execution: 'worker', threads: 2 });
console.log(JSON.stringify({ ms: performance.now() - t0, peakMiB: process.resourceUsage().maxRSS / 1024 }));
await lm.dispose();
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (values.child) {
  await child(values.child, values.dir!);
} else {
  const dir = values.dir ?? fixtureModel({ tokenizer: 'llama2', hiddenSize: 1024, numLayers: 8, numHeads: 16, seed: 71, externalData: values.external });
  // The model file and its external data, if any.
  const fileMiB = readdirSync(join(dir, 'onnx')).filter((f) => f.startsWith('model.onnx')).reduce((sum, f) => sum + statSync(join(dir, 'onnx', f)).size, 0) / 2 ** 20;
  const runs: Record<string, Array<{ ms: number; peakMiB: number }>> = { create: [], loadModel: [], worker: [], tokenizer: [] };
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const kind of round % 2 === 0 ? ['create', 'loadModel', 'worker', 'tokenizer'] : ['tokenizer', 'worker', 'loadModel', 'create']) {
      // The worker case runs plain Node on the build, as users do: under tsx every worker thread
      // would start tsx's loader too (~0.1 s that no user pays).
      const args = kind === 'worker' ? ['--input-type=module', '-e', WORKER_CHILD, dir] : ['--import', 'tsx', 'bench/load.ts', '--child', kind, '--dir', dir];
      const out = execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      runs[kind]!.push(JSON.parse(out.trim().split('\n').pop()!) as { ms: number; peakMiB: number });
    }
  }
  const create = { ms: median(runs.create!.map((r) => r.ms)), peak: median(runs.create!.map((r) => r.peakMiB)) };
  const load = { ms: median(runs.loadModel!.map((r) => r.ms)), peak: median(runs.loadModel!.map((r) => r.peakMiB)) };
  const worker = { ms: median(runs.worker!.map((r) => r.ms)), peak: median(runs.worker!.map((r) => r.peakMiB)) };
  console.log(`file ${fileMiB.toFixed(0)} MiB, ${values.rounds} rounds (medians)`);
  console.log('| load | time | peak RSS | peak RSS ÷ file |');
  console.log('|---|---:|---:|---:|');
  console.log(`| InferenceSession.create | ${(create.ms / 1000).toFixed(2)} s | ${create.peak.toFixed(0)} MiB | ${(create.peak / fileMiB).toFixed(2)} |`);
  console.log(`| loadModel (execution: 'inline') | ${(load.ms / 1000).toFixed(2)} s | ${load.peak.toFixed(0)} MiB | ${(load.peak / fileMiB).toFixed(2)} |`);
  console.log(`| loadModel (worker, the default) | ${(worker.ms / 1000).toFixed(2)} s | ${worker.peak.toFixed(0)} MiB | ${(worker.peak / fileMiB).toFixed(2)} |`);
  const tokenizer = median(runs.tokenizer!.map((r) => r.ms));
  console.log(`| of which the tokenizer (loaded alone) | ${(tokenizer / 1000).toFixed(2)} s | | |`);
  console.log(`loadModel ÷ create: inline ${(load.ms / create.ms).toFixed(2)}× (without the tokenizer ${((load.ms - tokenizer) / create.ms).toFixed(2)}×), worker ${(worker.ms / create.ms).toFixed(2)}×`);
}
