import { loadModel, loadRemoteModel, SafeEnsemble, type RemoteMember, type RemoteModelSpec } from '../../src/index';
import { bundledModels } from '../../src/demo/models';
import { EngineServer, type EngineServerOptions } from '../../tools/fixtures/engineServer';

/** What {@link servedEnsemble} sets up: filled in by its beforeAll. */
export interface ServedEnsemble {
  server: EngineServer;
  remote: RemoteMember;
  ensemble: SafeEnsemble;
  /** The ensemble's text for the question before any fault. */
  reference: string;
}

/**
 * Registers the hooks of a describe block whose tests use the bundled Qwen model drafting and
 * the bundled Mistral model served by a loopback `engine` server as verifier: started before
 * the block, stopped after it, the server's fault cleared after each test.
 */
export function servedEnsemble(engine: 'sglang' | 'vllm', question: string, spec: Partial<RemoteModelSpec> = {}, server: Partial<EngineServerOptions> = {}): ServedEnsemble {
  const [qwen, mistral] = bundledModels() as [string, string];
  const served = {} as ServedEnsemble;
  beforeAll(async () => {
    served.server = await EngineServer.start({ engine, model: mistral, ...server });
    served.remote = await loadRemoteModel({ engine, url: served.server.url, tokenizer: mistral, ...spec });
    served.ensemble = new SafeEnsemble([await loadModel(qwen), served.remote]);
    served.reference = (await served.ensemble.generate(question, { maxNewTokens: 24 })).text;
  });
  afterAll(async () => {
    await served.ensemble.dispose();
    await served.server.close();
  });
  afterEach(() => {
    served.server.fault = null;
  });
  return served;
}
