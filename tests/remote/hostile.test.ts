/**
 * Served models from hostile or misconfigured servers: answers too large to hold, redirects,
 * text that echoes the API key, log-probabilities out of range, cut and dripping answers, and
 * declarations that carry credentials. Each is a typed error naming the server and the fix,
 * with no secret in it, and the member works again once the server does.
 */
import { inspect } from 'node:util';
import { ContextOverflowError, InvalidArgumentError, loadModel, loadRemoteModel, RemoteEngineError, SafeEnsemble, SafeEnsembleLLM, type RemoteMember } from '../../src/index';
import { liveSessionCount } from '../../src/research';
import { bundledModels } from '../../src/demo/models';
import { EngineServer, type EngineFault } from '../../tools/fixtures/engineServer';
import { servedEnsemble } from '../helpers/servedEnsemble';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
const QUESTION = 'Mia has 37 marbles. She finds 25 more. How many marbles does she have now?';
const KEY = 'sk-fixture-7f3a9c1e5b';

// No session outlives the tests, whatever the servers did.
const sessionsBefore = liveSessionCount();
afterAll(() => expect(liveSessionCount()).toBe(sessionsBefore));

describe.each(['sglang', 'vllm'] as const)('%s: a hostile server', (engine) => {
  const served = servedEnsemble(engine, QUESTION, { apiKey: KEY, timeoutMs: 1500, retries: 0 });

  async function failure(fault: EngineFault, options = {}): Promise<RemoteEngineError> {
    served.server.fault = fault;
    const error = (await served.ensemble.generate(QUESTION, { maxNewTokens: 24, ...options }).catch((e: unknown) => e)) as RemoteEngineError;
    served.server.fault = null;
    expect(error).toBeInstanceOf(RemoteEngineError);
    expect(error.code).toBe('REMOTE_FAILED');
    expect(error.message).toContain(served.server.url);
    expect(error.message).not.toContain(KEY);
    expect(error.message.length).toBeLessThan(1200);
    // Usable again, with the same output.
    expect((await served.ensemble.generate(QUESTION, { maxNewTokens: 24 })).text).toBe(served.reference);
    return error;
  }

  it('an answer far larger than asked is cut at the limit (malformed), memory stays bounded', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    try {
      const error = await failure({ kind: 'oversized', bytes: 200 * 1024 * 1024 });
      expect(error.failure).toBe('malformed');
      expect(error.message).toMatch(/answer larger than \d+ bytes/);
      expect(error.message).toMatch(/maxResponseBytes/);
    } finally {
      clearInterval(sampler);
    }
    // The client (and this in-process server, which streams in pieces) never held the 200 MB.
    expect(peak - before).toBeLessThan(150 * 1024 * 1024);
  });

  it('a 20 MB error body becomes a short, clean message', async () => {
    const error = await failure({ kind: 'oversized', bytes: 20 * 1024 * 1024, status: 500 });
    expect(error.failure).toBe('http');
    expect(error.status).toBe(500);
    expect(error.message.length).toBeLessThan(700);
  });

  it('a server that echoes the Authorization header: the key is redacted', async () => {
    const error = await failure({ kind: 'status', status: 500, message: 'internal error\u0007\u001b[31m', echoAuthorization: true });
    expect(error.message).toMatch(/Bearer \[redacted\]/);
    expect(error.message).not.toMatch(/[\u0000-\u001f]/);
  });

  it('redirects are refused, naming where they pointed; nothing is re-sent there', async () => {
    const other = await EngineServer.start({ engine, model: MISTRAL });
    try {
      const error = await failure({ kind: 'redirect', location: `${other.url}/collect?from=redirect` });
      expect(error.failure).toBe('http');
      expect(error.status).toBe(307);
      expect(error.message).toContain(`redirected (HTTP 307) to ${other.url}/collect`);
      expect(error.message).not.toContain('from=redirect');
      expect(other.requests).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it.each([
    ['+Infinity as the best log-probability', 'inf'],
    ['-Infinity everywhere', 'all-ninf'],
    ['+50', 50],
  ] as const)('log-probabilities out of range (%s): malformed, greedy and sampled', async (_what, value) => {
    for (const options of [{}, { temperature: 0.7, seed: 3 }]) {
      const error = await failure({ kind: 'logprobs', value }, options);
      expect(error.failure).toBe('malformed');
      expect(error.message).toMatch(/log-probability/);
    }
  });

  it('a connection cut after the headers is reported as cut mid-answer', async () => {
    const error = await failure({ kind: 'cut' });
    expect(error.failure).toBe('interrupted');
    expect(error.message).toMatch(/closed the connection in the middle of its answer/);
  });

  it('an answer that drips past the timeout times out', async () => {
    const error = await failure({ kind: 'drip', everyMs: 40 });
    expect(error.failure).toBe('timeout');
  });

  it('the key appears in no serialization, statistic or trace', async () => {
    const r = await served.ensemble.generate(QUESTION, { maxNewTokens: 24, trace: true });
    expect(JSON.stringify(r)).not.toContain(KEY);
    expect(JSON.stringify(served.remote)).not.toContain(KEY);
    expect(inspect(served.remote, { depth: 6, showHidden: true })).not.toContain(KEY);
    expect(served.server.requests.at(-1)!.authorization).toBe(`Bearer ${KEY}`);
  });

  it('a score that leaves no room for the generated token fails before anything is sent', async () => {
    const small = await loadRemoteModel({ engine, url: served.server.url, tokenizer: MISTRAL, maxPositions: 8 });
    try {
      const sent = served.server.requests.length;
      await expect(small.score([1, 2, 3, 4, 5, 6, 7, 8])).rejects.toThrow(ContextOverflowError);
      expect(served.server.requests.length).toBe(sent);
      await expect(small.score([1, 2, 3, 4, 5, 6, 7])).resolves.toBeDefined();
    } finally {
      await small.dispose();
    }
  });

  it('an OpenAI-style base URL ending in /v1 is accepted', async () => {
    for (const url of [`${served.server.url}/v1`, `${served.server.url}/v1/`]) {
      const member = await loadRemoteModel({ engine, url, tokenizer: MISTRAL });
      expect(member.url).toBe(`${served.server.url}/`);
      await member.dispose();
    }
  });
});

describe('SGLang quirks', () => {
  let server: EngineServer;
  beforeAll(async () => {
    server = await EngineServer.start({ engine: 'sglang', model: MISTRAL });
  });
  afterAll(() => server.close());

  it('input ids at vocab_size - 1 echoed as 0 are accepted; rows equal the local model’s', async () => {
    const remote = await loadRemoteModel({ engine: 'sglang', url: server.url, tokenizer: MISTRAL });
    const local = await loadModel(MISTRAL, { execution: 'inline' });
    try {
      const last = remote.tokenizer.vocabSize - 1;
      const ids = [...remote.tokenizer.encode('Q: 12 + 30 =', { addSpecialTokens: true }), last, 29871, last];
      const served = await remote.score(ids, { rows: 'all', topK: 3 });
      const own = await local.score(ids, { rows: 'all', topK: 3 });
      for (let r = 0; r < ids.length; r++) expect(Array.from(served.at(r).top(3).ids)).toEqual(Array.from(own.at(r).top(3).ids));
    } finally {
      await remote.dispose();
      await local.dispose();
    }
  });

  it('null log-probabilities (its encoder’s non-finite values) are read as −∞', async () => {
    const remote = await loadRemoteModel({ engine: 'sglang', url: server.url, tokenizer: MISTRAL });
    try {
      server.fault = { kind: 'logprobs', value: 'null-last' };
      const scores = await remote.score(remote.tokenizer.encode('Q: 2 + 2 =', { addSpecialTokens: true }), { rows: 'last', topK: 4 });
      expect(scores.at(0).top(4).logits[3]).toBe(-Infinity);
      expect(Number.isFinite(scores.at(0).top(4).logits[0])).toBe(true);
    } finally {
      server.fault = null;
      await remote.dispose();
    }
  });
});

describe('vLLM versions', () => {
  it('0.7 (per-request return_tokens_as_token_ids ignored): refused at load with the fix; with --return-tokens-as-token-ids it works', async () => {
    const old = await EngineServer.start({ engine: 'vllm', model: MISTRAL, vllmRelease: '0.7' });
    const flagged = await EngineServer.start({ engine: 'vllm', model: MISTRAL, vllmRelease: '0.7', returnTokensAsTokenIds: true });
    try {
      const error = (await loadRemoteModel({ engine: 'vllm', url: old.url, tokenizer: MISTRAL }).catch((e: unknown) => e)) as RemoteEngineError;
      expect(error).toBeInstanceOf(RemoteEngineError);
      expect(error.failure).toBe('unsupported');
      expect(error.message).toMatch(/--return-tokens-as-token-ids/);
      expect(error.message).toMatch(/0\.8\.0/);
      const member = await loadRemoteModel({ engine: 'vllm', url: flagged.url, tokenizer: MISTRAL });
      const ensemble = new SafeEnsemble([await loadModel(QWEN), member]);
      const local = await SafeEnsemble.load({ models: [QWEN, MISTRAL] });
      expect((await ensemble.generate(QUESTION, { maxNewTokens: 24 })).text).toBe((await local.generate(QUESTION, { maxNewTokens: 24 })).text);
      await ensemble.dispose();
      await local.dispose();
    } finally {
      await old.close();
      await flagged.close();
    }
  });

  it('the V0 wording of the logprob cap is recognised as unsupported, with the --max-logprobs fix', async () => {
    const server = await EngineServer.start({ engine: 'vllm', model: MISTRAL, maxLogprobs: 5, capWording: 'v0' });
    const ensemble = new SafeEnsemble([await loadModel(QWEN), await loadRemoteModel({ engine: 'vllm', url: server.url, tokenizer: MISTRAL })]);
    try {
      const error = (await ensemble.generate(QUESTION, { maxNewTokens: 8, unionTopK: 10 }).catch((e: unknown) => e)) as RemoteEngineError;
      expect(error.failure).toBe('unsupported');
      expect(error.message).toMatch(/Cannot request more than 5 logprobs/);
      expect(error.message).toMatch(/--max-logprobs/);
    } finally {
      await ensemble.dispose();
      await server.close();
    }
  });

  it('a fill-in refused for another reason (context length) is an error, not a silent bound', async () => {
    const server = await EngineServer.start({ engine: 'vllm', model: MISTRAL });
    const member = await loadRemoteModel({ engine: 'vllm', url: server.url, tokenizer: MISTRAL, allowBoundedLogprobs: true });
    try {
      const scores = await member.score(member.tokenizer.encode('Q: 2 + 2 =', { addSpecialTokens: true }), { rows: 'last', topK: 3 });
      server.fault = { kind: 'status', status: 400, message: "This model's maximum context length is 16 tokens. However, you requested 40 tokens." };
      const error = (await scores.at(0).logitsOf([5, 6]).catch((e: unknown) => e)) as RemoteEngineError;
      expect(error).toBeInstanceOf(RemoteEngineError);
      expect(error.failure).toBe('http');
      expect(error.message).toMatch(/maximum context length/);
      expect(member.stats.boundedLogprobs).toBe(0);
    } finally {
      server.fault = null;
      await member.dispose();
      await server.close();
    }
  });

  it.each([-1, 0, 1.5, 1e300, 'long'])('max_model_len %p from /v1/models is refused (maxPositions overrides it)', async (value) => {
    const server = await EngineServer.start({ engine: 'vllm', model: MISTRAL });
    server.reportedMaxModelLen = value;
    try {
      const error = (await loadRemoteModel({ engine: 'vllm', url: server.url, tokenizer: MISTRAL }).catch((e: unknown) => e)) as RemoteEngineError;
      expect(error).toBeInstanceOf(RemoteEngineError);
      expect(error.failure).toBe('malformed');
      expect(error.message).toMatch(/max_model_len .* is not a context length.*Pass maxPositions/);
      const member = await loadRemoteModel({ engine: 'vllm', url: server.url, tokenizer: MISTRAL, maxPositions: 512 });
      expect(member.maxPositions).toBe(512);
      await member.dispose();
    } finally {
      await server.close();
    }
  });
});

describe('declarations', () => {
  const SECRET = 'pa55w0rd-do-not-echo';
  it.each([
    [`http://admin:${SECRET}@127.0.0.1:1`, /must not carry credentials.*pass apiKey instead/i],
    [`http://${SECRET}@127.0.0.1:1`, /must not carry credentials/],
    [`http://127.0.0.1:1/?token=${SECRET}`, /must not have a query/],
    [`ftp://127.0.0.1/${SECRET}`, /http or https/],
    [`not a url ${SECRET}`, /not a valid URL/],
  ])('url %s is refused at declaration without echoing it', async (url, message) => {
    for (const attempt of [
      () => loadRemoteModel({ engine: 'vllm', url, tokenizer: MISTRAL }),
      async () => new SafeEnsembleLLM({ models: [{ engine: 'vllm', url, tokenizer: MISTRAL }, QWEN] }),
    ]) {
      const error = (await attempt().catch((e: unknown) => e)) as InvalidArgumentError;
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error.field).toBe('url');
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain(SECRET);
    }
  });

  it('the LangChain classes check engine, apiKey, tokenizer and options at construction', () => {
    const bad = (spec: Record<string, unknown>) => () => new SafeEnsembleLLM({ models: [{ engine: 'sglang', url: 'http://127.0.0.1:1', tokenizer: MISTRAL, ...spec } as never, QWEN] });
    expect(bad({ engine: 'tgi' })).toThrow(/engine must be one of sglang, vllm/);
    expect(bad({ apiKey: 5 })).toThrow(/apiKey must be a non-empty string/);
    expect(bad({ apiKey: 'a\nb' })).toThrow(/without line breaks/);
    expect(bad({ tokenizer: '' })).toThrow(/tokenizer is required/);
    expect(bad({ timeoutMs: -1 })).toThrow(InvalidArgumentError);
    expect(bad({ maxPositon: 5 })).toThrow(/"maxPositon" is not an option of a served model/);
  });
});
