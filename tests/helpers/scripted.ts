import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeScriptedModel, type ScriptedModelOptions } from '../../tools/fixtures/scriptedDecoder';

const ROOT = join(tmpdir(), 'lse-scripted-v3');

/** Folder of a scripted fixture model, written once per machine (keyed by its options). */
export async function scriptedModel(options: ScriptedModelOptions): Promise<string> {
  const key = createHash('sha1').update(JSON.stringify(options)).digest('hex').slice(0, 16);
  const dir = join(ROOT, `${options.tokenizer}-${key}`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  mkdirSync(ROOT, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'lse-scripted-'));
  await writeScriptedModel(tmp, options);
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
