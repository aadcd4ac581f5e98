/**
 * A model whose onnxruntime session lives in its own worker thread, so the caller's event
 * loop never waits on a forward pass and several members can run at once.
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { InferenceError, WorkerError } from '../errors.js';
import { moduleFile } from './moduleFile.js';
import { countWorkerSession } from './ort.js';
import { prepareModel, type OpenedModel, type OpenRequest, type PreparedModel, type TokenizerFacts } from './openSession.js';
import type { RowAnswer, RowQuery, ScorePayload, ScoreRequest } from '../member/scores.js';
import type { LogitsPayload, ModelBackend } from './sessionRunner.js';
import { deserializeError, RUNNING, STOPPING, type WorkerReply, type WorkerRequest } from './workerMessages.js';

let liveWorkers = 0;

/** Number of member worker threads running now (started by this library and not yet exited). */
export function liveWorkerCount(): number {
  return liveWorkers;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * Shared with each worker: [RUNNING, STOPPING]. onnxruntime-node aborts the whole process when a
 * worker is torn down in the middle of `session.run` (its binding throws into a dying
 * environment), so before the process exits, and before a worker is terminated on purpose, the
 * main thread asks the worker to start no new pass and waits for the one in progress to end.
 */
/** Longest wait for a pass in progress at exit (a prefill of a long prompt can take seconds). */
const EXIT_WAIT_MS = 60_000;

const running = new Set<Int32Array>();

/** Lets every worker finish its pass in progress and start no other; blocks this thread meanwhile. */
function quiesce(state: Int32Array): void {
  Atomics.store(state, STOPPING, 1);
  const deadline = Date.now() + EXIT_WAIT_MS;
  while (Atomics.load(state, RUNNING) === 1 && Date.now() < deadline) Atomics.wait(state, RUNNING, 1, 100);
}

process.once('exit', () => {
  for (const state of running) quiesce(state);
});

/** Starts a worker thread on the member worker entry, from the build or (under tsx/ts-jest) the sources. */
function startWorker(state: Int32Array): Worker {
  const here = moduleFile || join(process.cwd(), 'index.js');
  const ext = extname(here);
  const entry = join(dirname(here), `memberWorker${ext}`);
  if (!existsSync(entry)) throw new WorkerError(`the member worker entry ${entry} is missing; rebuild the package (npm run build) or pass execution: 'inline'.`);
  if (ext === '.ts') {
    // Running from the TypeScript sources (tests, tsx): the worker compiles them the same way.
    const tsx = createRequire(here).resolve('tsx/cjs');
    return new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(entry)});`, { eval: true, workerData: { state } });
  }
  return new Worker(entry, { workerData: { state }, execArgv: workerExecArgv(process.execArgv) });
}

/**
 * The parent's Node options a worker can take: `--input-type` (from `node --input-type=module -e`
 * or a script piped to stdin) is refused for a worker started from a file.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    if (execArgv[i] === '--input-type') i++;
    else if (!execArgv[i]!.startsWith('--input-type=')) kept.push(execArgv[i]!);
  }
  return kept;
}

/**
 * The worker side of {@link ModelBackend}: requests are numbered, replies settle them, and a
 * worker that exits fails every waiting call with {@link WorkerError}. After that the next call
 * starts a fresh worker and reopens the session; its cache starts empty, which the owner
 * learns through `onCacheLost`.
 */
export class WorkerBackend implements ModelBackend {
  private worker: Worker | null = null;
  private starting: Promise<void> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private nextSeq = 1;
  private released = false;
  private holdsSession = false;
  /** Set when the worker died: the next forward restarts it first. */
  private dead = false;
  /** [RUNNING, STOPPING] of the current worker (see quiesce). */
  private state = new Int32Array(new SharedArrayBuffer(8));
  onCacheLost?: () => void;

  private constructor(
    private request: OpenRequest,
    private readonly onWarning: (message: string) => void,
  ) {}

  /**
   * Starts the worker and opens the session in it. With `facts`, the request lacks the
   * tokenizer's and the session is created while it loads; they are sent when they come (and
   * kept in the request for restarts). A `facts` that fails stops the worker and fails the open.
   */
  static async open(request: OpenRequest, onWarning: (message: string) => void, facts?: Promise<TokenizerFacts>): Promise<{ backend: WorkerBackend; opened: OpenedModel }> {
    const backend = new WorkerBackend(request, onWarning);
    let prepared: ReturnType<typeof prepareModel> = null;
    try {
      // The rewrites run here while the new thread starts up (it would otherwise do them after).
      const starting = backend.start(() => (prepared = prepareModel(request))?.prepared);
      starting.catch(() => undefined); // awaited below; a failure while the facts load is not unhandled
      if (facts) {
        const known = await facts;
        backend.request = { ...backend.request, ...known };
        backend.worker?.postMessage({ op: 'tokenizer', facts: known });
      }
      const opened = await starting;
      return { backend, opened };
    } catch (error) {
      await backend.release();
      throw error;
    } finally {
      (prepared as ReturnType<typeof prepareModel>)?.cleanup();
    }
  }

  /** Terminates the worker between two passes, as if it had crashed there (for tests of recovery). */
  async terminateForTest(): Promise<void> {
    quiesce(this.state);
    await this.worker?.terminate();
  }

  async forward(ids: readonly number[], wanted: number, seq = 0): Promise<LogitsPayload> {
    await this.ready();
    return (await this.call({ op: 'forward', id: 0, seq, ids: [...ids], wanted })) as LogitsPayload;
  }

  async score(ids: readonly number[], request: ScoreRequest, seq = 0): Promise<ScorePayload> {
    await this.ready();
    return (await this.call({ op: 'score', id: 0, seq, ids: [...ids], request })) as ScorePayload;
  }

  async read(queries: readonly RowQuery[], seq = 0): Promise<RowAnswer[]> {
    if (this.released) throw new InferenceError(`${this.request.name}: the model was released.`);
    return (await this.call({ op: 'read', id: 0, seq, queries: [...queries] })) as RowAnswer[];
  }

  /** Numbers are given here; the worker makes a sequence's slot on its first pass (a restarted worker too). */
  openSequence(): number {
    return this.nextSeq++;
  }

  closeSequence(seq: number): void {
    if (this.worker && !this.dead) this.worker.postMessage({ op: 'close', seq } satisfies WorkerRequest);
  }

  /** Before a pass: fails once released, restarts a worker that died. */
  private async ready(): Promise<void> {
    if (this.released) throw new InferenceError(`${this.request.name}: the model was released.`);
    if (this.dead) {
      this.dead = false;
      this.starting ??= this.start().then(() => undefined).finally(() => (this.starting = null));
    }
    if (this.starting) await this.starting;
  }

  crop(length: number, seq = 0): void {
    if (this.worker && !this.dead) this.worker.postMessage({ op: 'crop', seq, length } satisfies WorkerRequest);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const worker = this.worker;
    if (!worker) return;
    try {
      if (this.holdsSession) await this.call({ op: 'release', id: 0 });
    } catch {
      // The worker is going away either way.
    } finally {
      this.sessionGone();
      await worker.terminate();
    }
  }

  /** Starts a worker and opens the session in it; `prepare` (first open only) rewrites the graph on this thread meanwhile. */
  private async start(prepare?: () => PreparedModel | undefined): Promise<OpenedModel> {
    this.state = new Int32Array(new SharedArrayBuffer(8));
    const state = this.state;
    const worker = startWorker(state);
    running.add(state);
    liveWorkers++;
    this.worker = worker;
    worker.unref();
    worker.on('message', (message: WorkerReply) => this.receive(message));
    worker.on('error', (error) => this.failAll(worker, new WorkerError(`${this.request.name}: the model's worker thread failed: ${error.message}. The next call starts a new one.`, { cause: error })));
    worker.on('exit', (code) => {
      liveWorkers--;
      running.delete(state);
      this.failAll(worker, new WorkerError(`${this.request.name}: the model's worker thread exited (code ${code}) during the call. The next call starts a new one with an empty cache.`));
    });
    let opened: OpenedModel;
    try {
      const prepared = prepare?.();
      opened = (await this.call({ op: 'open', id: 0, request: prepared ? { ...this.request, prepared } : this.request })) as OpenedModel;
    } catch (error) {
      // A restart that cannot reopen the session leaves the backend dead: the next call tries again.
      if (this.worker === worker) {
        this.worker = null;
        this.dead = !this.released;
        await worker.terminate();
      }
      throw error;
    }
    this.holdsSession = true;
    countWorkerSession(1);
    return opened;
  }

  /** Sends a request and waits for its reply; the worker is kept referenced only while one is pending. */
  private call(message: WorkerRequest & { id: number }): Promise<unknown> {
    const worker = this.worker;
    if (!worker || this.dead) return Promise.reject(new WorkerError(`${this.request.name}: the model's worker thread is not running.`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      try {
        worker.postMessage({ ...message, id });
      } catch (error) {
        this.settle(id);
        reject(new InferenceError(`${this.request.name}: could not send the request to the model's worker thread: ${(error as Error).message}`, { cause: error }));
      }
    });
  }

  private settle(id: number): Pending | undefined {
    const entry = this.pending.get(id);
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker?.unref();
    return entry;
  }

  private receive(message: WorkerReply): void {
    if (message.op === 'warning') return this.onWarning(message.message);
    const entry = this.settle(message.id);
    if (!entry) return;
    if (message.op === 'done') entry.resolve(message.value);
    else entry.reject(deserializeError(message.error, this.request.name));
  }

  private failAll(worker: Worker, error: WorkerError): void {
    if (worker !== this.worker) return;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    this.worker = null;
    if (!this.released) {
      this.dead = true;
      this.sessionGone();
      this.onCacheLost?.();
    }
    void worker.terminate();
    for (const p of waiting) p.reject(error);
  }

  private sessionGone(): void {
    if (this.holdsSession) countWorkerSession(-1);
    this.holdsSession = false;
  }
}
