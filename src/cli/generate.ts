/**
 * `safe-ensemble [generate] "question"`: answers with SAFE, streaming committed text.
 * @module
 */
import { SafeEnsemble, type RemoteMemberSpec } from '../ensemble/safeEnsemble.js';
import type { EnsembleOptions } from '../ensemble/options.js';
import { responseFormatConstraint } from '../ensemble/jsonConstraint.js';
import type { EnsembleResult, TraceRecord } from '../ensemble/types.js';
import { readFileSync } from 'node:fs';
import { bundledModels } from '../demo/models.js';
import { KNOB_FLAGS, KNOB_HELP, knobsFromFlags, number, parse, positiveInteger, UsageError } from './flags.js';

export const GENERATE_HELP = `Usage: safe-ensemble [generate] [options] "question"

Answers with SAFE on the bundled demo models (or the models you name), streaming the text as it
is committed, then prints one line of statistics.

Options:
  --model DIR                 model folder or Hub id; repeat for each model, the first drafts
                              (default: the bundled qwen-adder and mistral-subtractor)
  --model sglang:URL          a model served by SGLang (or vllm:URL for vLLM), e.g.
                              sglang:http://gpu-1:30000; each takes the next --tokenizer
  --tokenizer DIR             tokenizer folder of a served model, in --model order
  --api-key KEY               API key of the served models (or SAFE_ENSEMBLE_API_KEY)
  --max-new-tokens N          most tokens to generate                         (256)
  --stop TEXT                 stop string; repeatable
  --raw-prompt                use the text as it is, without the chat template
  --allow-special-tokens      let special-token strings in the text act as control tokens
  --trace                     print every ensemble decision
  --json                      print one JSON object (text, finishReason, stats[, trace])
  --json-schema FILE          answer with JSON valid against the JSON Schema in FILE
                              (constrained decoding: the text always parses and validates)
  --json-object               answer with a JSON object (any keys)
  --threads N                 onnxruntime threads per model
  -h, --help                  this help

${KNOB_HELP}`;

const FLAGS = {
  ...KNOB_FLAGS,
  model: { type: 'string', multiple: true },
  tokenizer: { type: 'string', multiple: true },
  'api-key': { type: 'string' },
  'max-new-tokens': { type: 'string' },
  stop: { type: 'string', multiple: true },
  'raw-prompt': { type: 'boolean' },
  'allow-special-tokens': { type: 'boolean' },
  trace: { type: 'boolean' },
  json: { type: 'boolean' },
  'json-schema': { type: 'string' },
  'json-object': { type: 'boolean' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** One readable line per ensemble decision. */
export function formatTrace(t: TraceRecord): string {
  const models = t.models.map((m) => `${m.model.split(/[\\/]/).pop()}: ${JSON.stringify(m.token)} ${(m.probability * 100).toFixed(1)}%`).join(', ');
  const candidates = t.candidates
    .slice(0, 4)
    .map((c) => `${JSON.stringify(c.text)} ${(c.average * 100).toFixed(1)}%${c.score !== c.average ? `→${(c.score * 100).toFixed(1)}` : ''}`)
    .join(', ');
  return `[ensemble] token ${t.tokenIndex} (byte ${t.byteOffset}): drafted ${JSON.stringify(t.drafted.text)}; ${models}; mean ${(t.meanOwnProbability * 100).toFixed(1)}%; candidates ${candidates}${t.sharpened ? ' (sharpened)' : ''} → ${JSON.stringify(t.winner.text)}`;
}

/** The one-line summary after a generation. */
export function statsLine(r: EnsembleResult): string {
  const s = r.stats;
  const tps = s.generatedTokens / Math.max(1e-9, s.time.totalMs / 1000);
  const sampled = s.sampling ? `, sampled with seed ${s.sampling.seed}${s.strategy === 'safe' ? ` (${s.sampling.accepted} of ${s.sampling.tested} drafted tokens accepted)` : ''}` : '';
  return `[${s.strategy}] ${s.generatedTokens} tokens, ${s.ensembledTokens} ensembled (E/T ${s.ensembleRatePct.toFixed(1)}%)${sampled}, ${tps.toFixed(1)} tokens/s, finish: ${r.finishReason}`;
}

/** The JSON Schema in `file`, or a usage error that says what is wrong with it. */
export function schemaFromFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--json-schema ${file}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--json-schema ${file}: not JSON (${(e as Error).message.slice(0, 80)})`);
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new UsageError(`--json-schema ${file}: a JSON Schema is an object, e.g. {"type": "object", "properties": {"answer": {"type": "number"}}}`);
  return schema as Record<string, unknown>;
}

const SERVED = /^(sglang|vllm):(https?:\/\/.+)$/;

/** `--model` entries as load specs: folders as they are, `sglang:URL` / `vllm:URL` with the next `--tokenizer`. */
export function modelsFromFlags(models: string[] | undefined, tokenizers: string[] = [], apiKey?: string): Array<string | RemoteMemberSpec> {
  if (!models) {
    if (tokenizers.length) throw new UsageError('--tokenizer goes with a served model: --model sglang:URL --tokenizer DIR');
    return bundledModels();
  }
  let next = 0;
  const out = models.map((m): string | RemoteMemberSpec => {
    const served = SERVED.exec(m);
    if (!served) {
      if (/^(sglang|vllm):/i.test(m)) throw new UsageError(`--model ${m}: a served model is sglang:URL or vllm:URL with an http(s) URL, e.g. sglang:http://127.0.0.1:30000`);
      return m;
    }
    const tokenizer = tokenizers[next++];
    if (!tokenizer) throw new UsageError(`--model ${m} needs a --tokenizer DIR (the served model's tokenizer files), given after it`);
    return { engine: served[1] as 'sglang' | 'vllm', url: served[2]!, tokenizer, ...(apiKey ? { apiKey } : {}) };
  });
  if (next < tokenizers.length) throw new UsageError(`${tokenizers.length} --tokenizer flags for ${next} served models; give one per sglang:/vllm: model`);
  return out;
}

/** Runs the subcommand; returns the exit code. */
export async function generate(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values, positionals } = parse(args, FLAGS);
  if (values.help) {
    out.write(`${GENERATE_HELP}\n`);
    return 0;
  }
  const question = positionals.join(' ').trim();
  if (!question) throw new UsageError('give a question, e.g. safe-ensemble "Mia has 37 marbles. She finds 25 more. How many marbles does she have now?"');
  const options: EnsembleOptions = knobsFromFlags(values);
  const maxNewTokens = number('max-new-tokens', values['max-new-tokens']);
  if (maxNewTokens !== undefined) options.maxNewTokens = maxNewTokens;
  if (values.stop) options.stop = values.stop as string[];
  if (values['raw-prompt']) options.rawPrompt = true;
  if (values['allow-special-tokens']) options.allowSpecialTokens = true;
  if (values.trace || values.json) options.trace = Boolean(values.trace);
  if (values['json-schema'] !== undefined && values['json-object']) throw new UsageError('give --json-schema FILE or --json-object, not both');
  if (values['json-schema'] !== undefined) options.responseFormat = schemaFromFile(values['json-schema'] as string);
  else if (values['json-object']) options.responseFormat = 'json';
  responseFormatConstraint(options.responseFormat); // a schema the grammar cannot enforce fails before any model loads
  const threads = positiveInteger('threads', values.threads);
  const models = modelsFromFlags(values.model as string[] | undefined, values.tokenizer as string[] | undefined, (values['api-key'] as string | undefined) ?? process.env.SAFE_ENSEMBLE_API_KEY);
  const drafter = number('drafter', values.drafter);
  // A progress line while the models load (overwritten on a terminal), then how long it took.
  const names = models.map((m) => (typeof m === 'string' ? (m.split(/[\\/]/).filter(Boolean).pop() ?? m) : `${m.engine}:${m.url}`)).join(', ');
  const tty = (err as NodeJS.WriteStream).isTTY === true;
  if (tty) err.write(`[loading] ${names}…`);
  const t0 = performance.now();
  const ensemble = await SafeEnsemble.load({ models, drafter, loadOptions: threads ? { threads } : {}, ...(models.length === 1 && !options.strategy ? { strategy: 'single' as const } : {}) });
  err.write(`${tty ? '\r\x1b[K' : ''}[loaded] ${models.length} model${models.length === 1 ? '' : 's'} (${names}) in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
  try {
    let result: EnsembleResult | undefined;
    for await (const chunk of ensemble.stream(question, options)) {
      if (chunk.type === 'result') result = chunk.result;
      else if (!values.json) out.write(chunk.text);
    }
    if (values.json) {
      out.write(`${JSON.stringify({ text: result!.text, finishReason: result!.finishReason, stats: result!.stats, ...(result!.trace ? { trace: result!.trace } : {}) })}\n`);
    } else {
      out.write('\n');
      if (values.trace) for (const t of result!.trace ?? []) err.write(`${formatTrace(t)}\n`);
      err.write(`${statsLine(result!)}\n`);
    }
    return 0;
  } finally {
    await ensemble.dispose();
  }
}
