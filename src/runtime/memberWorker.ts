/**
 * Entry point of a member worker thread: owns one model's onnxruntime session and KV cache,
 * runs its forward passes off the caller's event loop, and sends logits back as transferred
 * buffers (never copied). Started by {@link WorkerBackend}; not imported by anything else.
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InferenceError, WorkerError } from '../errors.js';
import { openSession, type TokenizerFacts } from './openSession.js';
import type { SessionRunner } from './sessionRunner.js';
import { RUNNING, serializeError, STOPPING, type WorkerReply, type WorkerRequest } from './workerMessages.js';

const port = parentPort;
if (!port) throw new Error('memberWorker runs only as a worker thread (started by WorkerBackend).');

let runner: SessionRunner | null = null;
/** [RUNNING, STOPPING], shared with the main thread (see quiesce in workerBackend.ts). */
const state = (workerData as { state: Int32Array }).state;
// Requests run one at a time in arrival order, so a crop always lands between the passes it
// was sent between.
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

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** Distinct ArrayBuffers among `buffers` (SharedArrayBuffers and absent ones left out). */
function transferable(buffers: Array<ArrayBufferLike | undefined>): ArrayBuffer[] {
  return buffers.filter((b, i, all): b is ArrayBuffer => b instanceof ArrayBuffer && all.indexOf(b) === i);
}

async function handle(message: WorkerRequest): Promise<void> {
  if (message.op === 'crop') {
    runner?.crop(message.length);
    return;
  }
  if (message.op === 'tokenizer') return;
  try {
    if (message.op === 'open') {
      if (runner) throw new InferenceError(`${message.request.name}: the worker already holds a session.`);
      const { runner: opened, opened: info } = await openSession(message.request, (warning) => reply({ op: 'warning', message: warning }), factsArriving());
      runner = opened;
      reply({ op: 'done', id: message.id, value: info });
    } else if (message.op === 'forward' || message.op === 'score') {
      if (!runner) throw new InferenceError('the worker holds no session (it was released).');
      if (Atomics.load(state, STOPPING) === 1) throw new WorkerError('the process is exiting: no new forward pass starts.');
      Atomics.store(state, RUNNING, 1);
      let out;
      try {
        out = message.op === 'forward' ? await runner.forward(message.ids, message.wanted) : await runner.score(message.ids, message.request);
      } finally {
        Atomics.store(state, RUNNING, 0);
        Atomics.notify(state, RUNNING);
      }
      const buffers = 'best' in out ? [out.data.buffer, out.best.buffer] : [out.topIds.buffer, out.topLogits.buffer, out.asked.buffer, out.logNormalizers.buffer, out.data?.buffer];
      reply({ op: 'done', id: message.id, value: out }, transferable(buffers));
    } else if (message.op === 'read') {
      if (!runner) throw new InferenceError('the worker holds no session (it was released).');
      // Held rows are views into pass outputs other held rows share: send copies, never the buffers.
      const answers = (await runner.read(message.queries)).map((a) => (a.row ? { ...a, row: a.row.slice() } : a));
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
  } else chain = chain.then(() => handle(message));
});
