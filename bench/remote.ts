/**
 * SAFE over remote members vs all-local, in one run: the bundled models served by loopback
 * protocol servers (tools/fixtures/engineServer.ts: SGLang `/generate` and vLLM
 * `/v1/completions` answering with real inference), checked to give the all-local output, with
 * requests and bytes per generated token per member. Then a model — not a measurement of a GPU
 * server — of wall time per token for a network round trip and a server step time, with the
 * verifiers' requests of a cycle sent one after another or at once (the library sends them at once).
 * Tokens drafted ahead and dropped are not counted as server steps (a lower bound there).
 *
 *   npm run bench:remote -- [--problems 20]
 */
import { parseArgs } from 'node:util';
import { loadModel, loadRemoteModel, SafeEnsemble, type EnsembleMember, type EnsembleResult, type RemoteModelSpec } from '../src/index.js';
import { bundledModels } from '../src/demo/models.js';
import { problemSet } from '../src/demo/wordProblems.js';
import { EngineServer } from '../tools/fixtures/engineServer.js';

const { values } = parseArgs({ options: { problems: { type: 'string', default: '20' } } });
const problems = problemSet(Number(values.problems));
const [QWEN, MISTRAL, LLAMA] = bundledModels({ all: true }) as [string, string, string];
const PATHS = [QWEN, MISTRAL, LLAMA];

type Placement = 'local' | 'sglang' | 'vllm' | 'vllm-prefix';
interface Setup {
  label: string;
  placement: Placement[];
}
const setups: Setup[] = [
  { label: 'all local', placement: ['local', 'local', 'local'] },
  { label: 'local drafter, SGLang verifiers', placement: ['local', 'sglang', 'sglang'] },
  { label: 'local drafter, vLLM verifiers (prompt-logprobs)', placement: ['local', 'vllm', 'vllm'] },
  { label: 'local drafter, vLLM verifiers (prefix-cache)', placement: ['local', 'vllm-prefix', 'vllm-prefix'] },
  { label: 'all remote (SGLang drafter, SGLang + vLLM verifiers)', placement: ['sglang', 'sglang', 'vllm'] },
];

const servers: EngineServer[] = [];
async function member(i: number, where: Placement): Promise<EnsembleMember> {
  if (where === 'local') return loadModel(PATHS[i]!);
  const engine = where === 'sglang' ? 'sglang' : 'vllm';
  const server = await EngineServer.start({ engine, model: PATHS[i]! });
  servers.push(server);
  const spec: RemoteModelSpec = { engine, url: server.url, tokenizer: PATHS[i]!, ...(where === 'vllm-prefix' ? { vllmScoring: 'prefix-cache' as const } : {}) };
  return loadRemoteModel(spec);
}

interface Totals {
  tokens: number;
  ensembled: number;
  /** Per member: requests, bytes received, bytes sent, waiting ms; drafted tokens for the drafter. */
  requests: number[];
  received: number[];
  sent: number[];
  drafted: number;
  texts: string[];
}

const results: Array<{ setup: Setup; totals: Totals }> = [];
for (const setup of setups) {
  const members = await Promise.all(setup.placement.map((p, i) => member(i, p)));
  const ensemble = new SafeEnsemble(members);
  const totals: Totals = { tokens: 0, ensembled: 0, requests: [0, 0, 0], received: [0, 0, 0], sent: [0, 0, 0], drafted: 0, texts: [] };
  for (const p of problems) {
    const r: EnsembleResult = await ensemble.generate(p.question);
    totals.tokens += r.stats.generatedTokens;
    totals.ensembled += r.stats.ensembledTokens;
    totals.drafted += r.stats.draftedTokens;
    totals.texts.push(r.text);
    r.stats.network?.forEach((n, i) => {
      if (!n) return;
      totals.requests[i]! += n.requests;
      totals.received[i]! += n.bytesReceived;
      totals.sent[i]! += n.bytesSent;
    });
  }
  await ensemble.dispose();
  await Promise.all(servers.splice(0).map((s) => s.close()));
  results.push({ setup, totals });
}

const reference = results[0]!.totals.texts;
console.log(`SAFE + UniTE, qwen-adder drafts, mistral-subtractor and llama3-subtractor verify; ${problems.length} problems; ${new Date().toISOString().slice(0, 10)}`);
console.log('\n| members | output = all-local | E/T % | requests / token (drafter, verifier 1, verifier 2) | kB received / token | kB sent / token |');
console.log('|---|---|---:|---|---:|---:|');
for (const { setup, totals } of results) {
  const same = totals.texts.every((t, i) => t === reference[i]);
  const per = (xs: number[]) => xs.map((x) => (x / totals.tokens).toFixed(2)).join(', ');
  const kb = (xs: number[]) => (xs.reduce((a, b) => a + b, 0) / totals.tokens / 1024).toFixed(2);
  console.log(`| ${setup.label} | ${same ? 'yes' : '**no**'} | ${((100 * totals.ensembled) / totals.tokens).toFixed(2)} | ${per(totals.requests)} | ${kb(totals.received)} | ${kb(totals.sent)} |`);
}

// The model: every request costs one round trip; a drafting request costs one server decode
// step per drafted token, a verifier request one step (a chunk prefill), a fill-in read one.
const remote = results[results.length - 1]!.totals;
const perToken = (x: number) => x / remote.tokens;
const draftReq = perToken(remote.requests[0]!);
const draftSteps = perToken(remote.drafted);
const verifierReq = [perToken(remote.requests[1]!), perToken(remote.requests[2]!)];
console.log(`\nModelled wall time per generated token, all-remote row above (${draftReq.toFixed(2)} drafter requests and ${draftSteps.toFixed(2)} drafted tokens per token; verifiers ${verifierReq.map((v) => v.toFixed(2)).join(' and ')} requests per token):`);
console.log('t = (drafter requests + verifier requests) × RTT + (drafted tokens + verifier requests) × step; "at once" counts the verifiers of a cycle as the slower one.');
console.log('\n| RTT | server step | verifiers one after another | verifiers at once (this library) | drafter alone, streaming |');
console.log('|---:|---:|---:|---:|---:|');
for (const rtt of [0.2, 1, 5, 20]) {
  for (const step of [10, 25]) {
    const seq = (draftReq + verifierReq[0]! + verifierReq[1]!) * rtt + (draftSteps + verifierReq[0]! + verifierReq[1]!) * step;
    const par = (draftReq + Math.max(...verifierReq)) * rtt + (draftSteps + Math.max(...verifierReq)) * step;
    const alone = step; // one streamed request per response: the round trip is not per token
    console.log(`| ${rtt} ms | ${step} ms | ${seq.toFixed(1)} ms | ${par.toFixed(1)} ms | ${alone.toFixed(1)} ms |`);
  }
}
