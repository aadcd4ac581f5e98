/**
 * Entry point of a member worker thread: owns one model's onnxruntime session and KV cache,
 * runs its forward passes off the caller's event loop, and sends logits back as transferred
 * buffers (never copied). Started by {@link WorkerBackend}; not imported by anything else.
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InferenceError, WorkerError } from '../errors.js';
import type { TokenizerFacts } from './openSession.js';
import { releaseSession } from './ort.js';
import { createModelSession } from './sessionCreation.js';
import type { SessionRunner } from './sessionRunner.js';
import { RUNNING, serializeError, STOPPING, type WorkerReply, type WorkerRequest } from './workerMessages.js';

const port = parentPort;
if (!port) throw new Error('memberWorker runs only as a worker thread (started by WorkerBackend).');

let runner: SessionRunner | null = null;
/** [RUNNING, STOPPING], shared with the main thread (see quiesce in workerBackend.ts). */
const state = (workerData as { state: Int32Array }).state;
// Opens and releases run one at a time in arrival order; other requests start in arrival order
// behind them without waiting for each other.
let chain: Promise<void> = Promise.resolve();
/** The tokenizer's facts, for an `open` sent before they were known (they follow it). */
let tokenizerFacts: { promise: Promise<TokenizerFacts>; resolve: (facts: TokenizerFacts) => void } | null = null;

function factsArriving(): Promise<TokenizerFacts> {
  if (!tokenizerFacts) {
    let resolve!: (facts: TokenizerFacts) => void;
    const promise = new Promise<TokenizerFacts>((r) => (resolve = r));
    tokenizerFacts = { promise, resolve };
  }
  return tokenizerFacts.promise;
}

/**
 * openSession.ts, loaded after the session's creation began. Where modules are CommonJS (the CJS
 * build, or the TypeScript sources under tsx's require hook) `require` resolves it.
 */
function importOpenSession(): Promise<typeof import('./openSession.js')> {
  return typeof require === 'function' ? Promise.resolve(require('./openSession.js') as typeof import('./openSession.js')) : import('./openSession.js');
}

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** Distinct ArrayBuffers among `buffers` (SharedArrayBuffers and absent ones left out). */
function transferable(buffers: Array<ArrayBufferLike | undefined>): ArrayBuffer[] {
  return buffers.filter((b, i, all): b is ArrayBuffer => b instanceof ArrayBuffer && all.indexOf(b) === i);
}

/** Marks each onnxruntime run in the shared state, and starts none once the process is exiting. */
const guard = {
  before(): void {
    if (Atomics.load(state, STOPPING) === 1) throw new WorkerError('the process is exiting: no new forward pass starts.');
    Atomics.store(state, RUNNING, 1);
  },
  after(): void {
    Atomics.store(state, RUNNING, 0);
    Atomics.notify(state, RUNNING);
  },
};

/**
 * Passes, reads, crops and closes act on one sequence each and are handled as they arrive (the
 * caller sends a sequence's next request only after its last one was answered), so passes of
 * different sequences wait in the runner together and run batched; `open` and `release` queue.
 */
async function handle(message: WorkerRequest): Promise<void> {
  if (message.op === 'crop') {
    runner?.crop(message.length, message.seq);
    return;
  }
  if (message.op === 'close') {
    runner?.closeSequence(message.seq);
    return;
  }
  if (message.op === 'tokenizer') return;
  try {
    if (message.op === 'open') {
      if (runner) throw new InferenceError(`${message.request.name}: the worker already holds a session.`);
      const { request } = message;
      const warn = (warning: string) => reply({ op: 'warning', message: warning });
      // The session is created before the rest of the runtime is imported: the worker's start
      // is on the critical path of a load, the imports (~10 ms) need not be.
      const started = request.prepared ? createModelSession(request.prepared.model, request.onnxFile, { ...request.execution, onWarning: warn }, request.prepared.names !== null) : null;
      started?.catch(() => undefined); // awaited by openSession
      let openSession: typeof import('./openSession.js').openSession;
      try {
        ({ openSession } = await importOpenSession());
      } catch (error) {
        const created = await started?.catch(() => null);
        if (created) await releaseSession(created.session);
        throw error;
      }
      const { runner: opened, opened: info } = await openSession(request, warn, factsArriving(), started);
      runner = opened;
      runner.guard = guard;
      reply({ op: 'done', id: message.id, value: info });
    } else if (message.op === 'forward' || message.op === 'score') {
      if (!runner) throw new InferenceError('the worker holds no session (it was released).');
      const out = message.op === 'forward' ? await runner.forward(message.ids, message.wanted, message.seq) : await runner.score(message.ids, message.request, message.seq);
      const buffers = 'best' in out ? [out.data.buffer, out.best.buffer] : [out.topIds.buffer, out.topLogits.buffer, out.asked.buffer, out.logNormalizers.buffer, out.data?.buffer];
      reply({ op: 'done', id: message.id, value: out }, transferable(buffers));
    } else if (message.op === 'read') {
      if (!runner) throw new InferenceError('the worker holds no session (it was released).');
      // Held rows are views into pass outputs other held rows share: send copies, never the buffers.
      const answers = (await runner.read(message.queries, message.seq)).map((a) => (a.row ? { ...a, row: a.row.slice() } : a));
      reply({ op: 'done', id: message.id, value: answers }, transferable(answers.flatMap((a) => [a.logits.buffer, a.row?.buffer])));
    } else {
      const held = runner;
      runner = null;
      await held?.release();
      reply({ op: 'done', id: message.id, value: null });
    }
  } catch (error) {
    reply({ op: 'failed', id: message.id, error: serializeError(error) });
  }
}

port.on('message', (message: WorkerRequest) => {
  // Not queued: the open it completes is waiting for it at the head of the queue.
  if (message.op === 'tokenizer') {
    void factsArriving();
    tokenizerFacts!.resolve(message.facts);
  } else if (message.op === 'open' || message.op === 'release') chain = chain.then(() => handle(message));
  // Behind an open or release still under way; else at once.
  else chain = chain.then(() => void handle(message));
});
