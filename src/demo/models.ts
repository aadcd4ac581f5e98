/**
 * The demo models bundled with the package (models/), trained by tools/train.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ModelNotFoundError } from '../errors.js';
import { moduleFile } from '../runtime/moduleFile.js';

/** The default pair of bundled demo models, drafter first: strong at additions (Qwen3 tokenizer), strong at subtractions (Mistral tokenizer). */
export const DEMO_MODEL_NAMES = ['qwen-adder', 'mistral-subtractor'] as const;

/**
 * Every bundled demo model: the default pair, and a third strong at subtractions whose Llama 3
 * tokenizer keeps multi-digit numbers whole, so that pairs with it disagree on token boundaries.
 */
export const ALL_DEMO_MODEL_NAMES = [...DEMO_MODEL_NAMES, 'llama3-subtractor'] as const;

function isOurRoot(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'langchain-safe-ensemble';
  } catch {
    return false;
  }
}

/** The folder of this package (works from src/, dist/esm and dist/cjs, installed or not). */
export function packageRoot(): string {
  // This file's own location first (both module formats), then the running script's.
  const starts = [moduleFile, process.argv[1] ?? ''].filter(Boolean);
  for (const start of starts) {
    let dir = dirname(start);
    for (let i = 0; i < 8; i++) {
      if (isOurRoot(dir)) return dir;
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  try {
    return dirname(createRequire(join(process.cwd(), 'index.js')).resolve('langchain-safe-ensemble/package.json'));
  } catch {
    return process.cwd();
  }
}

/** Absolute folders of the bundled demo models: the default pair, or with `all` every one. */
export function bundledModels(options: { all?: boolean } = {}): string[] {
  const root = packageRoot();
  return (options.all ? ALL_DEMO_MODEL_NAMES : DEMO_MODEL_NAMES).map((name) => {
    const dir = join(root, 'models', name);
    if (!existsSync(join(dir, 'onnx', 'model.onnx'))) {
      throw new ModelNotFoundError(`the bundled demo model ${name} is missing at ${dir}; reinstall the package, or pass --model DIR.`);
    }
    return dir;
  });
}
