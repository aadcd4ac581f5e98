/**
 * Sampling with remote members. A served model is seen through the top log-probabilities the
 * engine returns, so its sampling distribution is those entries (an implicit top-k); with the
 * same cut on every member (topK = unionTopK) local and remote members hold the same
 * distributions, and since every number is drawn here from the seed (the server never
 * samples), a seed gives the all-local text against either engine.
 */
import { loadModel, loadRemoteModel, SafeEnsemble, type EnsembleMember, type EnsembleOptions, type EnsembleResult } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { problemSet } from '../../src/demo/wordProblems';
import { EngineServer } from '../../tools/fixtures/engineServer';
import { comparableWithoutNetwork } from '../helpers/results';

const [QWEN, MISTRAL] = bundledModels() as [string, string];
const PROBLEMS = problemSet(6);
const OPTIONS: EnsembleOptions = { temperature: 0.8, topK: 10, unionTopK: 10, maxNewTokens: 60 };

const same = comparableWithoutNetwork;

describe('sampling with remote members', () => {
  const servers: EngineServer[] = [];
  let reference: EnsembleResult[] = [];
  async function run(members: EnsembleMember[], options: EnsembleOptions = OPTIONS): Promise<EnsembleResult[]> {
    const ensemble = new SafeEnsemble(members);
    try {
      const out: EnsembleResult[] = [];
      for (let i = 0; i < PROBLEMS.length; i++) out.push(await ensemble.generate(PROBLEMS[i]!.question, { ...options, seed: 100 + i }));
      return out;
    } finally {
      await ensemble.dispose();
    }
  }
  beforeAll(async () => {
    reference = await run([await loadModel(QWEN), await loadModel(MISTRAL)]);
    expect(reference.some((r) => r.stats.sampling!.rejected > 0)).toBe(true);
  });
  afterAll(() => Promise.all(servers.map((s) => s.close())));

  it.each([
    ['SGLang drafter (one request per drafted token) + local verifier', 'sglang', 'drafter'],
    ['local drafter + vLLM verifier', 'vllm', 'verifier'],
  ] as const)('%s: a seed gives the all-local text and statistics', async (_name, engine, role) => {
    const server = await EngineServer.start({ engine, model: role === 'drafter' ? QWEN : MISTRAL });
    servers.push(server);
    const remote = await loadRemoteModel({ engine, url: server.url, tokenizer: role === 'drafter' ? QWEN : MISTRAL });
    const members = role === 'drafter' ? [remote, await loadModel(MISTRAL)] : [await loadModel(QWEN), remote];
    const got = await run(members);
    expect(got.map(same)).toEqual(reference.map(same));
    // The server was asked for log-probabilities only: greedy requests, never a sampled draft.
    expect(server.requests.filter((r) => /"temperature":(?!0[,}])/.test(JSON.stringify(r.body)))).toEqual([]);
  }, 600_000);
});
