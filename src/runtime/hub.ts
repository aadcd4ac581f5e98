/**
 * Hub ids resolved through transformers.js's own cache folder and download settings
 * (`env.cacheDir`, `env.remoteHost`, `env.allowRemoteModels`), so a model fetched once by
 * transformers.js is found here too, and vice versa. transformers.js is loaded only when a Hub id
 * is resolved (it brings an image library and a second copy of onnxruntime's JS API).
 * @module
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ModelNotFoundError } from '../errors.js';
import { DTYPE_SUFFIX } from './dtypes.js';

/** Options for models given as Hub ids. */
export interface HubOptions {
  /** Git revision (default `main`). */
  revision?: string;
  /** Cache folder (default transformers.js `env.cacheDir`). */
  cacheDir?: string;
  /** Never download, even when transformers.js allows remote models. */
  localFilesOnly?: boolean;
  /** See {@link index!LoadModelOptions.dtype}. */
  dtype?: string;
  /** See {@link index!LoadModelOptions.modelFileName}. */
  modelFileName?: string;
  /** See {@link index!LoadModelOptions.subfolder}. */
  subfolder?: string;
}

const REPO_ID = /^(\b[\w\-.]+\b\/)?\b[\w\-.]{1,96}\b$/;

/** True when `value` has the shape of a Hub repository id (`name` or `org/name`). */
export function isHubId(value: string): boolean {
  return REPO_ID.test(value) && !value.includes('..') && !value.includes('--') && !value.endsWith('.git');
}


/** Returns the cache folder of `id`, downloading missing files when remote access is allowed. */
export async function resolveHubModel(id: string, options: HubOptions = {}): Promise<string> {
  const { env } = await import('@huggingface/transformers');
  const revision = options.revision ?? 'main';
  const cacheRoot = options.cacheDir ?? env.cacheDir ?? join(process.cwd(), '.cache');
  const dir = revision === 'main' ? join(cacheRoot, id) : join(cacheRoot, id, revision);
  const remote = Boolean(env.allowRemoteModels) && !options.localFilesOnly;
  const sub = options.subfolder ?? 'onnx';
  const suffix = (DTYPE_SUFFIX as Record<string, string>)[options.dtype ?? 'fp32'] ?? '';
  const onnxCandidates = options.modelFileName
    ? [options.modelFileName.endsWith('.onnx') ? options.modelFileName : `${options.modelFileName}${suffix}.onnx`]
    : [`model${suffix}.onnx`, `decoder_model_merged${suffix}.onnx`];

  const missingOffline = (file: string) =>
    new ModelNotFoundError(
      `"${id}" is not a local folder, and ${file} is not in the transformers.js cache (${dir}); ` +
        (remote ? 'the download failed.' : 'remote downloads are disabled (transformers.js env.allowRemoteModels = false or localFilesOnly). ') +
        'Download the model once with network access, or pass the path of a local model folder.',
    );

  for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
    if (existsSync(join(dir, file))) continue;
    if (!remote || !(await download(env, id, revision, file, join(dir, file)))) throw missingOffline(file);
  }
  for (const file of ['generation_config.json', 'chat_template.jinja']) {
    if (!existsSync(join(dir, file)) && remote) await download(env, id, revision, file, join(dir, file));
  }
  const cached = onnxCandidates.find((f) => existsSync(join(dir, sub, f)));
  if (!cached) {
    let got: string | undefined;
    for (const f of remote ? onnxCandidates : []) {
      if (await download(env, id, revision, `${sub}/${f}`, join(dir, sub, f))) {
        got = f;
        await download(env, id, revision, `${sub}/${f}_data`, join(dir, sub, `${f}_data`));
        break;
      }
    }
    if (!got) throw missingOffline(`${sub}/${onnxCandidates.join(' or ')}`);
  }
  return dir;
}

/** The part of transformers.js's `env` that says where models come from. */
interface HubEnv {
  remoteHost?: string;
  remotePathTemplate?: string;
}

async function download(env: HubEnv, id: string, revision: string, file: string, target: string): Promise<boolean> {
  const template = (env.remotePathTemplate ?? '{model}/resolve/{revision}/').replaceAll('{model}', id).replaceAll('{revision}', encodeURIComponent(revision));
  const url = `${String(env.remoteHost ?? 'https://huggingface.co/').replace(/\/?$/, '/')}${template.replace(/^\//, '')}${file}`;
  let response: Response;
  try {
    response = await fetch(url);
  } catch (cause) {
    throw new ModelNotFoundError(`could not download ${url} (${(cause as Error).message}). Check the network, or pass a local model folder.`, { cause });
  }
  if (response.status === 404) return false;
  if (!response.ok) throw new ModelNotFoundError(`downloading ${url} failed with HTTP ${response.status}. For gated models set HF_TOKEN; otherwise check the id.`);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.part-${process.pid}`;
  writeFileSync(tmp, Buffer.from(await response.arrayBuffer()));
  renameSync(tmp, target);
  return true;
}
