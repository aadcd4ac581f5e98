/**
 * Remote members when the server misbehaves: each fault is a typed RemoteEngineError naming the
 * member and the URL, the process stays up, and the ensemble works again once the server does.
 */
import { InvalidArgumentError, loadModel, loadRemoteModel, RemoteEngineError, SafeEnsemble } from '../../src/index';
import { type RemoteEngine } from '../../src/research';
import { bundledModels } from '../../src/demo/models';
import { EngineServer, type EngineFault } from '../../tools/fixtures/engineServer';
import { servedEnsemble } from '../helpers/servedEnsemble';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
const QUESTION = 'Mia has 37 marbles. She finds 25 more. How many marbles does she have now?';
const QUESTIONS = [QUESTION, 'Omar has 45 stickers and gives away 17. How many stickers are left?', 'Ingrid reads 23 pages on Monday and 19 on Tuesday. How many pages in all?'];

describe.each(['sglang', 'vllm'] as const)('%s member faults', (engine: RemoteEngine) => {
  const served = servedEnsemble(engine, QUESTION, { timeoutMs: 1500, retries: 1, retryDelayMs: 10 }, { maxLogprobs: 20 });

  const expectFault = async (fault: EngineFault, failure: RemoteEngineError['failure'], message: RegExp) => {
    served.server.fault = fault;
    const error = (await served.ensemble.generate(QUESTION, { maxNewTokens: 24 }).catch((e: unknown) => e)) as RemoteEngineError;
    expect(error).toBeInstanceOf(RemoteEngineError);
    expect(error.code).toBe('REMOTE_FAILED');
    expect(error.failure).toBe(failure);
    expect(error.message).toContain(served.server.url);
    expect(error.message).toContain(`${engine}:`);
    expect(error.message).toMatch(message);
    served.server.fault = null;
    // Usable again, with the same output.
    expect((await served.ensemble.generate(QUESTION, { maxNewTokens: 24 })).text).toBe(served.reference);
  };

  it('a server that stalls past the timeout', () => expectFault({ kind: 'stall', ms: 2500 }, 'timeout', /did not answer within 1500 ms/));
  it('malformed JSON', () => expectFault({ kind: 'malformed' }, 'malformed', /not JSON/));
  it('HTTP 500 with the engine’s message surfaced', () => expectFault({ kind: 'status', status: 500, message: 'CUDA out of memory (fixture)' }, 'http', /HTTP 500: CUDA out of memory \(fixture\)/));
  it('HTTP 400 with the engine’s message surfaced', () => expectFault({ kind: 'status', status: 400, message: 'The context is too long (fixture)' }, 'http', /HTTP 400: The context is too long/));
  it('token ids out of the vocabulary', () => expectFault({ kind: 'out-of-range' }, 'malformed', /outside the tokenizer's vocabulary/));

  it('HTTP 503 and 429 are retried with backoff; the output is unchanged', async () => {
    for (const status of [503, 429]) {
      served.server.fault = { kind: 'status', status, message: 'busy (fixture)', times: 1 };
      const r = await served.ensemble.generate(QUESTION, { maxNewTokens: 24 });
      expect(r.text).toBe(served.reference);
      expect(r.stats.network![1]!.retries).toBe(1);
    }
    // More failures than retries: the error says what the server said.
    served.server.fault = { kind: 'status', status: 503, message: 'still busy (fixture)', times: 2 };
    await expect(served.ensemble.generate(QUESTION, { maxNewTokens: 24 })).rejects.toThrow(/HTTP 503: still busy \(fixture\)/);
  });

  it('abort mid-request: the generation ends as aborted and the request is cut', async () => {
    served.server.fault = { kind: 'stall', ms: 1200 };
    const controller = new AbortController();
    const seen = served.server.requests.length;
    setTimeout(() => controller.abort(), 150);
    const r = await served.ensemble.generate(QUESTION, { maxNewTokens: 24, signal: controller.signal });
    expect(r.finishReason).toBe('abort');
    expect(served.server.requests.length).toBeGreaterThan(seen);
    served.server.fault = null;
    await new Promise((resolve) => setTimeout(resolve, 1300)); // the stalled handler finishes
    expect(served.server.cutRequests).toBeGreaterThan(0);
    expect((await served.ensemble.generate(QUESTION, { maxNewTokens: 24 })).text).toBe(served.reference);
  });

  it('server killed mid-generation, then back on the same port', async () => {
    const generation = served.ensemble.generate(QUESTION, { maxNewTokens: 64 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    await served.server.kill();
    const error = (await generation.catch((e: unknown) => e)) as RemoteEngineError;
    // The kill may land after the last request: then the generation simply finished.
    if (error instanceof Error) {
      expect(error).toBeInstanceOf(RemoteEngineError);
      expect(['unreachable', 'timeout']).toContain(error.failure);
      expect(error.message).toContain(served.server.url);
    }
    await expect(served.ensemble.generate(QUESTION, { maxNewTokens: 8 })).rejects.toThrow(/cannot reach/);
    await served.server.listenAgain();
    expect((await served.ensemble.generate(QUESTION, { maxNewTokens: 24 })).text).toBe(served.reference);
  });
});

describe('remote members at load', () => {
  it('server down: unreachable, naming the URL', async () => {
    const server = await EngineServer.start({ engine: 'sglang', model: MISTRAL });
    const url = server.url;
    await server.close();
    const error = (await loadRemoteModel({ engine: 'sglang', url, tokenizer: MISTRAL, retries: 1, retryDelayMs: 5 }).catch((e: unknown) => e)) as RemoteEngineError;
    expect(error).toBeInstanceOf(RemoteEngineError);
    expect(error.failure).toBe('unreachable');
    expect(error.message).toContain(url);
  });

  it.each(['sglang', 'vllm'] as const)('%s: a tokenizer of another model is refused, naming both', async (engine) => {
    const server = await EngineServer.start({ engine, model: MISTRAL });
    try {
      const error = (await loadRemoteModel({ engine, url: server.url, tokenizer: QWEN }).catch((e: unknown) => e)) as RemoteEngineError;
      expect(error).toBeInstanceOf(RemoteEngineError);
      expect(error.failure).toBe('mismatch');
      expect(error.message).toContain(QWEN);
      expect(error.message).toMatch(/serves another model/);
    } finally {
      await server.close();
    }
  });

  it('vLLM: a top-k above --max-logprobs fails with the cap and the fix', async () => {
    const server = await EngineServer.start({ engine: 'vllm', model: MISTRAL, maxLogprobs: 5 });
    const ensemble = new SafeEnsemble([await loadModel(QWEN), await loadRemoteModel({ engine: 'vllm', url: server.url, tokenizer: MISTRAL })]);
    try {
      const error = (await ensemble.generate(QUESTION, { maxNewTokens: 8, unionTopK: 10 }).catch((e: unknown) => e)) as RemoteEngineError;
      expect(error).toBeInstanceOf(RemoteEngineError);
      expect(error.failure).toBe('unsupported');
      expect(error.message).toMatch(/greater than max allowed: 5/);
      expect(error.message).toMatch(/--max-logprobs/);
      await expect(ensemble.generate(QUESTION, { maxNewTokens: 8, unionTopK: 5 })).resolves.toBeDefined();
    } finally {
      await ensemble.dispose();
      await server.close();
    }
  });

  it('GaC with a remote member fails at construction, saying why', async () => {
    const server = await EngineServer.start({ engine: 'sglang', model: MISTRAL });
    const local = await loadModel(QWEN);
    const remote = await loadRemoteModel({ engine: 'sglang', url: server.url, tokenizer: MISTRAL });
    try {
      expect(() => new SafeEnsemble([local, remote], { baseEnsembler: 'gac' })).toThrow(InvalidArgumentError);
      expect(() => new SafeEnsemble([local, remote], { strategy: 'gac-threshold' })).toThrow(/needs whole probability rows.*top-k log-probabilities/);
      const ensemble = new SafeEnsemble([local, remote]);
      await expect(ensemble.generate(QUESTION, { baseEnsembler: 'gac' })).rejects.toThrow(/baseEnsembler 'unite'/);
      await ensemble.dispose();
    } finally {
      await server.close();
    }
  });

  it.each(['sglang', 'vllm'] as const)('%s without log-probabilities of arbitrary ids: refused with the fix, or (allowBoundedLogprobs) fill-ins use the bound, counted', async (engine) => {
    const server = await EngineServer.start({ engine, model: MISTRAL, arbitraryIds: false });
    // vLLM then scores by prefix-cache prompts (prompt log-probabilities are what it lacks).
    const spec = { engine, url: server.url, tokenizer: MISTRAL, ...(engine === 'vllm' ? { vllmScoring: 'prefix-cache' as const } : {}) };
    // Not silently: SGLang is found out at load, vLLM at the first fill-in.
    const strict = (await (async () => {
      const member = await loadRemoteModel(spec);
      const strictEnsemble = new SafeEnsemble([await loadModel(QWEN), member]);
      try {
        for (const q of QUESTIONS) await strictEnsemble.generate(q, { maxNewTokens: 48 });
      } finally {
        await strictEnsemble.dispose();
      }
    })().catch((e: unknown) => e)) as RemoteEngineError;
    expect(strict).toBeInstanceOf(RemoteEngineError);
    expect(strict.failure).toBe('unsupported');
    expect(strict.message).toMatch(/allowBoundedLogprobs: true/);
    expect(strict.message).toMatch(engine === 'sglang' ? /token_ids_logprob/ : /prompt_logprobs/);
    const remote = await loadRemoteModel({ ...spec, allowBoundedLogprobs: true });
    const ensemble = new SafeEnsemble([await loadModel(QWEN), remote]);
    try {
      let bounded = 0;
      let ensembled = 0;
      for (const q of QUESTIONS) {
        const r = await ensemble.generate(q, { maxNewTokens: 48 });
        bounded += r.stats.network![1]!.boundedLogprobs;
        ensembled += r.stats.ensembledTokens;
      }
      expect(ensembled).toBeGreaterThan(0);
      expect(bounded).toBeGreaterThan(0);
    } finally {
      await ensemble.dispose();
      await server.close();
    }
  });

  it('sends the API key as a bearer token', async () => {
    const server = await EngineServer.start({ engine: 'vllm', model: MISTRAL });
    try {
      await loadRemoteModel({ engine: 'vllm', url: server.url, tokenizer: MISTRAL, apiKey: 'sk-fixture' });
      expect(server.requests.length).toBeGreaterThan(0);
      expect(server.requests.every((r) => r.authorization === 'Bearer sk-fixture')).toBe(true);
      await expect(loadRemoteModel({ engine: 'vllm', url: server.url, tokenizer: MISTRAL, apiKey: '' })).rejects.toThrow(/apiKey must be a non-empty string/);
    } finally {
      await server.close();
    }
  });

  it('bad declarations get typed errors', async () => {
    await expect(loadRemoteModel({ engine: 'tgi' as never, url: 'http://127.0.0.1:1', tokenizer: MISTRAL })).rejects.toThrow(/engine must be one of sglang, vllm/);
    await expect(loadRemoteModel({ engine: 'sglang', url: 'ftp://x', tokenizer: MISTRAL })).rejects.toThrow(/http or https/);
    await expect(loadRemoteModel({ engine: 'sglang', url: 'http://127.0.0.1:1', tokenizer: '' })).rejects.toThrow(/tokenizer is required/);
    await expect(loadRemoteModel({ engine: 'vllm', url: 'http://127.0.0.1:1', tokenizer: MISTRAL, vllmScoring: 'fast' as never })).rejects.toThrow(/vllmScoring/);
    await expect(loadRemoteModel({ engine: 'sglang', url: 'http://127.0.0.1:1', tokenizer: MISTRAL, timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
  });
});
