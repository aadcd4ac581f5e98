#!/usr/bin/env node
/**
 * The `safe-ensemble` command: `generate` (default), `inspect`, `bench`.
 * @module
 */
import { SafeEnsembleError } from '../errors.js';
import { bench, BENCH_HELP } from './bench.js';
import { UsageError } from './flags.js';
import { generate, GENERATE_HELP } from './generate.js';
import { inspect, INSPECT_HELP } from './inspect.js';

const HELP = `Usage: safe-ensemble <command> [options]

Runs several local ONNX LLMs as one with SAFE (Stable And Fast LLM Ensembling).

Commands:
  generate "question"   answer with SAFE (the default command: safe-ensemble "question")
  inspect DIR           show what the runtime sees in a model folder
  bench                 accuracy and speed of every strategy on the bundled models

Run safe-ensemble <command> --help for its options.`;

/** Runs the command line; returns the exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [first, ...rest] = argv;
  const command = first === 'generate' || first === 'inspect' || first === 'bench' ? first : first === 'help' ? 'help' : 'generate';
  const args = command === 'generate' && first !== 'generate' ? argv : rest;
  const help = { generate: GENERATE_HELP, inspect: INSPECT_HELP, bench: BENCH_HELP } as const;
  try {
    if (command === 'help' || (command === 'generate' && (argv.length === 0 || (argv.length === 1 && (first === '--help' || first === '-h'))))) {
      out.write(`${HELP}\n`);
      return argv.length === 0 ? 2 : 0;
    }
    if (command === 'inspect') return await inspect(args, out, err);
    if (command === 'bench') return await bench(args, out, err);
    return await generate(args, out, err);
  } catch (error) {
    if (error instanceof UsageError) {
      err.write(`safe-ensemble ${command}: ${error.message}\nRun safe-ensemble ${command} --help for usage.\n`);
      void help;
      return 2;
    }
    if (error instanceof SafeEnsembleError) {
      err.write(`safe-ensemble ${command}: ${error.message}\n`);
      return error.code === 'INVALID_ARGUMENT' ? 2 : 1;
    }
    err.write(`safe-ensemble ${command}: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
