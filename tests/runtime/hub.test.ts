import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { env } from '@huggingface/transformers';
import { loadModel, ModelNotFoundError } from '../../src/index';
import { isHubId } from '../../src/research';
import { fixtureModel, scratchDir } from '../helpers/fixtures';

describe('Hub ids resolve through the transformers.js cache', () => {
  const saved = { allowRemoteModels: env.allowRemoteModels, cacheDir: env.cacheDir };
  afterEach(() => {
    env.allowRemoteModels = saved.allowRemoteModels;
    env.cacheDir = saved.cacheDir;
  });

  it('recognizes Hub ids', () => {
    expect(isHubId('onnx-community/Qwen3-0.6B-ONNX')).toBe(true);
    expect(isHubId('gpt2')).toBe(true);
    expect(isHubId('a/b/c')).toBe(false);
    expect(isHubId('bad--id')).toBe(false);
  });

  it('fails clearly for a missing id when remote access is disabled', async () => {
    env.allowRemoteModels = false;
    env.cacheDir = scratchDir('hub-empty');
    const error = await loadModel('someone/missing-model').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelNotFoundError);
    expect((error as Error).message).toMatch(/"someone\/missing-model" is not a local folder.*not in the transformers\.js cache.*allowRemoteModels = false/);
  });

  it('loads an id that is already in the cache without any network', async () => {
    env.allowRemoteModels = false;
    const cache = scratchDir('hub-cache');
    env.cacheDir = cache;
    mkdirSync(join(cache, 'test-org'), { recursive: true });
    cpSync(fixtureModel({ tokenizer: 'llama2' }), join(cache, 'test-org', 'tiny'), { recursive: true });
    const lm = await loadModel('test-org/tiny');
    expect(lm.info.dir).toBe(join(cache, 'test-org', 'tiny'));
    expect((await lm.forward([1, 2])).rows).toBe(2);
    await lm.dispose();
  });
});
