/**
 * `safe-ensemble inspect DIR`: what the runtime sees in a model folder, or why it cannot load it.
 * @module
 */
import { loadModel } from '../runtime/loadModel.js';
import { SafeEnsembleError } from '../errors.js';
import { parse, UsageError } from './flags.js';

export const INSPECT_HELP = `Usage: safe-ensemble inspect [--json] DIR

Loads a model folder (or Hub id) the way the library does and prints what the runtime sees:
graph inputs, cache layout, vocabulary, special tokens and chat template, or the error that
stops it from loading (exit code 1).`;

/** Runs the subcommand; returns the exit code. */
export async function inspect(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    out.write(`${INSPECT_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('inspect needs exactly one model folder, e.g. safe-ensemble inspect ./models/qwen-adder');
  let lm;
  try {
    lm = await loadModel(positionals[0]!);
  } catch (error) {
    const code = error instanceof SafeEnsembleError ? error.code : 'UNEXPECTED';
    err.write(`cannot load ${positionals[0]}: [${code}] ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const info = lm.info;
    const tok = lm.tokenizer;
    const g = info.graph;
    // An id the config names but the tokenizer lacks (an EOS id past its vocabulary) is shown as such, not a crash.
    const named = (id: number) => (Number.isInteger(id) && id >= 0 && id < tok.vocabSize ? `${tok.tokenString(id)} (${id})` : `id ${id} (not in the tokenizer: never produced)`);
    const special = [...tok.specialTokenIds].slice(0, 12).map(named);
    // What the file has, and what the library adds to it at load.
    const fileInputs = ['input_ids', ...(g.hasAttentionMask ? ['attention_mask'] : []), ...(g.hasPositionIds ? ['position_ids'] : []), ...g.pastNames.flat(), ...(g.hasUseCacheBranch ? ['use_cache_branch'] : []), ...(g.logitsToKeepInput && !info.logitsToKeepAdded ? [g.logitsToKeepInput] : [])];
    const added = [...(info.logitsToKeepAdded ? [`${g.logitsToKeepInput ?? 'logits_to_keep'} input (prefill computes only the rows read)`] : []), ...(info.inGraphTopK ? ['in-graph top-k'] : []), ...(info.incrementalCache ? ['incremental KV cache outputs'] : [])];
    const report = {
      folder: info.dir,
      onnxFile: info.onnxFile,
      executionProviders: info.providers.providers,
      inputs: fileInputs,
      addedAtLoad: added,
      cache: g.numCacheLayers > 0 ? { layers: g.numCacheLayers, keyValueHeads: info.numKeyValueHeads, headDim: info.headDim, dtype: g.cacheDType } : 'none (full recompute every step)',
      logits: { vocabulary: info.vocabSize, dtype: g.logitsDType },
      contextLength: info.maxPositions,
      tokenizer: { kind: tok.kind, vocabulary: tok.vocabSize, bos: tok.bosTokenId === null ? null : named(tok.bosTokenId), eos: tok.eosTokenIds.map(named), specialTokens: special, specialCount: tok.specialTokenIds.size },
      chatTemplate: tok.chatTemplate ? `${tok.chatTemplate.length} characters` : 'none (string prompts are used as they are)',
    };
    if (values.json) out.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      out.write(`folder          ${report.folder}\n`);
      out.write(`onnx file       ${report.onnxFile}\n`);
      out.write(`providers       ${report.executionProviders.join(', ')}\n`);
      out.write(`graph inputs    ${report.inputs.length > 8 ? `${report.inputs.slice(0, 5).join(', ')}, … (${report.inputs.length} in all)` : report.inputs.join(', ')}\n`);
      out.write(`added at load   ${report.addedAtLoad.length ? report.addedAtLoad.join(', ') : 'nothing (runs as exported)'}\n`);
      out.write(`kv cache        ${typeof report.cache === 'string' ? report.cache : `${report.cache.layers} layers × [batch, ${report.cache.keyValueHeads} heads, past, ${report.cache.headDim}] ${report.cache.dtype}`}\n`);
      out.write(`logits          ${report.logits.vocabulary} columns, ${report.logits.dtype}\n`);
      out.write(`context         ${report.contextLength} tokens\n`);
      out.write(`tokenizer       ${report.tokenizer.kind}, ${report.tokenizer.vocabulary} ids, BOS ${report.tokenizer.bos ?? 'none'}, EOS ${report.tokenizer.eos.join(' ')}\n`);
      out.write(`special tokens  ${report.tokenizer.specialCount}: ${report.tokenizer.specialTokens.join(', ')}${report.tokenizer.specialCount > 12 ? ', …' : ''}\n`);
      out.write(`chat template   ${report.chatTemplate}\n`);
    }
    return 0;
  } finally {
    await lm.dispose();
  }
}
