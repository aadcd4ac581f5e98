/**
 * A loopback engine server (tools/fixtures/engineServer.ts) in a thread of its own, as a real
 * server runs apart from its clients: bench:concurrency starts one per served member, so the
 * servers' inference does not run on the event loop of the ensemble that calls them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EngineServer, type EngineServerOptions } from '../tools/fixtures/engineServer.js';

const server = await EngineServer.start(workerData as EngineServerOptions);
parentPort!.postMessage({ url: server.url });
parentPort!.on('message', async (message: string) => {
  if (message !== 'close') return;
  const peakBatch = server.peakBatch;
  await server.close();
  parentPort!.postMessage({ closed: true, peakBatch });
  parentPort!.close();
});
