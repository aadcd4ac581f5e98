/**
 * What a JSON-Schema constraint costs per token at a real small-LLM shape. A scripted decoder
 * of the SmolLM2-135M shape (30 layers, hidden 576, 9 / 3 heads) writes a JSON answer; the
 * same model answers with and without `responseFormat` (its text fits the schema, so both
 * write the same tokens), rows interleaved, one model per vocabulary: Qwen3 (151,669 ids) and
 * Mistral (32,000 ids; SmolLM2's 49,152 lie between). Reported: CPU and wall milliseconds per
 * token of each, the constraint's share of a decode step, and the grammar's trie walks.
 *
 *   npm run bench:constraint -- [--rounds 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SafeEnsemble, type EnsembleOptions } from '../src/index.js';
import { JsonSchemaConstraint } from '../src/research.js';
import { writeScriptedModel } from '../tools/fixtures/scriptedDecoder.js';
import { timed } from '../src/cli/benchMethod.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const rounds = Number(values.rounds);
const SMOL = { hiddenSize: 576, numLayers: 30, numHeads: 9, numKeyValueHeads: 3, intermediateSize: 1536, gatedMlp: true };
const PROMPT = 'Q: Mia has 37 marbles. She finds 25 more. How many marbles does she have now? Answer in JSON.\nA:';
const ANSWER = '{"reasoning": "Mia starts with 37 marbles. She finds 25 more, so she has 37 + 25 = 62 marbles.", "steps": [37, 25], "answer": 62, "unit": "marbles", "sure": true}';
const SCHEMA = {
  type: 'object',
  properties: { reasoning: { type: 'string' }, steps: { type: 'array', items: { type: 'integer' } }, answer: { type: 'number' }, unit: { enum: ['marbles', 'apples'] }, sure: { type: 'boolean' } },
  required: ['reasoning', 'answer'],
};

const dir = mkdtempSync(join(tmpdir(), 'lse-bench-constraint-'));
try {
  const lines: string[] = [];
  for (const tokenizer of ['qwen3', 'llama2'] as const) {
    const model = await writeScriptedModel(join(dir, tokenizer), { tokenizer, compute: SMOL, confidence: 0.9, maxPositions: 4096, context: 'text', scripts: [{ prompt: PROMPT, completion: ANSWER, rawPrompt: true }] });
    const ensemble = await SafeEnsemble.load({ models: [model], strategy: 'single', loadOptions: { execution: 'inline' } });
    const constraint = new JsonSchemaConstraint(SCHEMA);
    const free: EnsembleOptions = { rawPrompt: true }; // the default budget (256 tokens)
    const constrained: EnsembleOptions = { ...free, constraint };
    // Warm-up: sessions, and the vocabulary's token trie (built once per tokenizer, on first use).
    const warm = await timed(() => ensemble.generate(PROMPT, constrained));
    await ensemble.generate(PROMPT, free);
    const totals = { free: { cpu: 0, wall: 0, tokens: 0 }, constrained: { cpu: 0, wall: 0, tokens: 0 } };
    const walks0 = constraint.counts.walks;
    for (let round = 0; round < rounds; round++) {
      for (const name of round % 2 === 0 ? (['free', 'constrained'] as const) : (['constrained', 'free'] as const)) {
        const t = await timed(() => ensemble.generate(PROMPT, name === 'free' ? free : constrained));
        if (t.value.text !== ANSWER) throw new Error(`${name}: the model wrote ${JSON.stringify(t.value.text.slice(0, 80))}, not its script`);
        totals[name].cpu += t.cpuMs;
        totals[name].wall += t.wallMs;
        totals[name].tokens += t.value.stats.generatedTokens;
      }
    }
    const per = (x: { cpu: number; wall: number; tokens: number }) => ({ cpu: x.cpu / x.tokens, wall: x.wall / x.tokens });
    const f = per(totals.free);
    const c = per(totals.constrained);
    lines.push(
      `${tokenizer.padEnd(6)} ${String(ensemble.models[0]!.tokenizer.producibleIds).padStart(7)} ids | free ${f.cpu.toFixed(2)} ms CPU / ${f.wall.toFixed(2)} ms wall per token | constrained ${c.cpu.toFixed(2)} / ${c.wall.toFixed(2)} | constraint ${(((c.cpu - f.cpu) / f.cpu) * 100).toFixed(1)}% of a step (CPU), ${(((c.wall - f.wall) / f.wall) * 100).toFixed(1)}% (wall) | trie walks per generation after the first: ${((constraint.counts.walks - walks0) / rounds).toFixed(1)} | first constrained call ${warm.wallMs.toFixed(0)} ms (trie built)`,
    );
    await ensemble.dispose();
  }
  console.log(`JSON-Schema constraint at the SmolLM2-135M shape, single model, ${rounds} interleaved rounds, ${ANSWER.length}-byte answer:`);
  for (const l of lines) console.log(l);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
