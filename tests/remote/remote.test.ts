/**
 * Remote members (SGLang, vLLM) against loopback protocol servers that answer with real
 * inference from the bundled models: greedy SAFE with one local + one remote member and with
 * two remote members gives exactly the text and SAFE statistics of the all-local ensemble with
 * the paper's first-token scoring; with the default `unionScoring: 'auto'` the same texts (where
 * look-ahead scores a point, its refinement reads rows past the point only from local members:
 * a served member is known through its top-k, so the pass counts may differ).
 */
import { loadModel, loadRemoteModel, SafeEnsemble, type EnsembleMember, type EnsembleOptions, type EnsembleResult } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';
import { EngineServer } from '../../tools/fixtures/engineServer';
import { comparableWithoutNetwork } from '../helpers/results';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
// Enough problems that several ensemble (checked below); each runs through every engine pair.
const PROBLEMS = problemSet(8);

const same = comparableWithoutNetwork;
/** The paper's scoring: every row it reads is in a served member's top-k, so remote equals local exactly. */
const PAPER: EnsembleOptions = { unionScoring: 'first-token' };

describe('remote members give the all-local output', () => {
  const servers: EngineServer[] = [];
  let reference: EnsembleResult[] = [];
  let defaults: EnsembleResult[] = [];
  const start = async (engine: 'sglang' | 'vllm', model: string) => {
    const s = await EngineServer.start({ engine, model });
    servers.push(s);
    return s;
  };

  beforeAll(async () => {
    const local = new SafeEnsemble([await loadModel(QWEN), await loadModel(MISTRAL)]);
    try {
      reference = [];
      for (const p of PROBLEMS) reference.push(await local.generate(p.question, PAPER));
      defaults = [];
      for (const p of PROBLEMS) defaults.push(await local.generate(p.question));
    } finally {
      await local.dispose();
    }
    expect(reference.some((r) => r.stats.ensembledTokens > 0)).toBe(true);
    expect(defaults.some((r) => r.stats.lookAhead!.points > 0)).toBe(true);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  /** The problems with each option set, on one ensemble of `members` (disposed after). */
  async function runEach(members: EnsembleMember[], optionSets: EnsembleOptions[]): Promise<EnsembleResult[][]> {
    const ensemble = new SafeEnsemble(members);
    try {
      const out: EnsembleResult[][] = [];
      for (const options of optionSets) {
        const results: EnsembleResult[] = [];
        for (const p of PROBLEMS) results.push(await ensemble.generate(p.question, options));
        out.push(results);
      }
      return out;
    } finally {
      await ensemble.dispose();
    }
  }
  const run = async (members: EnsembleMember[]) => (await runEach(members, [PAPER]))[0]!;

  it.each([
    ['SGLang drafter + local verifier', 'sglang', 'drafter'],
    ['local drafter + SGLang verifier', 'sglang', 'verifier'],
    ['vLLM drafter + local verifier', 'vllm', 'drafter'],
    ['local drafter + vLLM verifier', 'vllm', 'verifier'],
  ] as const)('%s', async (_label, engine, role) => {
    const remoteModel = role === 'drafter' ? QWEN : MISTRAL;
    const server = await start(engine, remoteModel);
    const remote = await loadRemoteModel({ engine, url: server.url, tokenizer: remoteModel });
    const local = await loadModel(role === 'drafter' ? MISTRAL : QWEN);
    const results = await run(role === 'drafter' ? [remote, local] : [local, remote]);
    expect(results.map(same)).toEqual(reference.map(same));
    const network = results[0]!.stats.network!;
    const remoteIndex = role === 'drafter' ? 0 : 1;
    expect(network[1 - remoteIndex]).toBeNull();
    expect(network[remoteIndex]!.requests).toBeGreaterThan(0);
    expect(network[remoteIndex]!.bytesReceived).toBeGreaterThan(0);
    expect(network[remoteIndex]!.boundedLogprobs).toBe(0);
  });

  it.each([
    ['SGLang + vLLM', 'sglang', 'vllm'],
    ['vLLM (prefix-cache scoring) + SGLang', 'vllm', 'sglang'],
  ] as const)('two remote members: %s', async (_label, first, second) => {
    const a = await start(first, QWEN);
    const b = await start(second, MISTRAL);
    const members = [
      await loadRemoteModel({ engine: first, url: a.url, tokenizer: QWEN, ...(first === 'vllm' ? { vllmScoring: 'prefix-cache' as const } : {}) }),
      await loadRemoteModel({ engine: second, url: b.url, tokenizer: MISTRAL }),
    ];
    const [results, auto] = (await runEach(members, [PAPER, {}])) as [EnsembleResult[], EnsembleResult[]];
    expect(results.map(same)).toEqual(reference.map(same));
    // The defaults: the same texts and ensemble points as all-local.
    expect(auto.map((r) => [r.text, r.stats.ensembledTokens, r.stats.lookAhead!.points])).toEqual(defaults.map((r) => [r.text, r.stats.ensembledTokens, r.stats.lookAhead!.points]));
  });

  it('SGLang serves each verifier pass from its prefix cache', async () => {
    const server = await start('sglang', MISTRAL);
    const remote = await loadRemoteModel({ engine: 'sglang', url: server.url, tokenizer: MISTRAL });
    const ensemble = new SafeEnsemble([await loadModel(QWEN), remote]);
    try {
      const r = await ensemble.generate(PROBLEMS[0]!.question);
      const net = r.stats.network![1]!;
      // Every pass after the first resends the whole sequence; the cache serves most of it.
      const sent = server.requests.filter((q) => q.path === '/generate').slice(2);
      const starts = sent.map((q) => q.body!.logprob_start_len as number);
      expect(starts.every((s) => s > 0)).toBe(true);
      expect(net.cachedTokens).toBeGreaterThan(0.5 * sent.reduce((n, q) => n + (q.body!.input_ids as number[]).length, 0));
    } finally {
      await ensemble.dispose();
    }
  });
});
