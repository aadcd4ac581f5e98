import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFixtureModel, type FixtureModelOptions } from '../../tools/fixtures/tinyDecoder';

const ROOT = join(tmpdir(), 'lse-fixtures-v1');

/**
 * Returns the folder of a generated fixture model, writing it once per machine. Folders are
 * keyed by the options, and written to a temp folder then renamed, so parallel Jest workers
 * can share them.
 */
export function fixtureModel(options: FixtureModelOptions): string {
  const key = createHash('sha1').update(JSON.stringify(options)).digest('hex').slice(0, 16);
  const dir = join(ROOT, `${options.tokenizer}-${key}`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  mkdirSync(ROOT, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'lse-fixture-'));
  writeFixtureModel(tmp, options);
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another worker won the race
  }
  return dir;
}

/** A fresh, private copy location for tests that damage a model folder. */
export function scratchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `lse-${prefix}-`));
}
