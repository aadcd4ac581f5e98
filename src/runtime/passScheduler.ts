/**
 * Decides which passes run together. Passes of different sequences that wait at the same time
 * join one batched run (continuous batching: sequences join and leave between runs); the
 * oldest waiting pass is always in the next run, so none starves. A pass that arrives while
 * others are still coming (sequences are open whose passes have not arrived) waits at most
 * {@link COALESCE_MS} for them. The first batched runs of a session are checked: the most padded
 * pass of each runs again alone (and its own rows stand); a graph that does not keep the rows of
 * a batch apart gives other numbers, and then batching is switched off with one warning (as it is when
 * onnxruntime refuses a batched shape).
 * @module
 */
import { padding, type BatchJob } from './batchedPass.js';
import type { RowsPiece } from './runRows.js';

/** A pass waiting for its run; `solo` passes (pieces of a long prefill) never batch. */
export interface PassJob extends BatchJob {
  solo: boolean;
}

interface Waiting extends PassJob {
  resolve: (piece: RowsPiece) => void;
  reject: (error: unknown) => void;
}

export interface SchedulerHooks {
  name: string;
  /** Whether the graph allows batched runs at all. */
  canBatch: boolean;
  /** Most bytes of logits one run may return. */
  maxRowsBytes: number;
  /** Width of a logits row. */
  width(): number;
  /** Sequences open now (a bound on how many passes may still arrive). */
  openSequences(): number;
  runOne(job: PassJob): Promise<RowsPiece>;
  runMany(jobs: readonly PassJob[]): Promise<RowsPiece[]>;
  /** Rolls a sequence back (to rerun a checked pass alone). */
  crop(job: PassJob, length: number): void;
  /** Called once, the first time passes of two sequences wait together. */
  onFirstConcurrency(): void;
  onWarning(message: string): void;
}

/** Longest wait for passes of other open sequences before a run starts. */
export const COALESCE_MS = 1;
/** Most passes in one batched run. */
export const MAX_BATCH = 32;
/** Batched runs of a session checked against the same passes alone. */
const CHECKED_RUNS = 4;
/** Largest difference of a logit between the first batched run and the same pass alone, relative to the row's scale, that counts as batching working. */
const CHECK_TOLERANCE = 1e-2;

export class PassScheduler {
  readonly stats = { batchedRuns: 0, batchedPasses: 0, soloRuns: 0, largestBatch: 0 };
  private readonly queue: Waiting[] = [];
  private draining: Promise<void> | null = null;
  private batching: boolean;
  /** Batched runs checked against their passes run alone so far. */
  private checked = 0;
  private concurrencySeen = false;

  constructor(private readonly hooks: SchedulerHooks) {
    this.batching = hooks.canBatch;
  }

  /** Runs the pass, alone or with others; resolves with its rows. */
  submit(job: PassJob): Promise<RowsPiece> {
    return new Promise<RowsPiece>((resolve, reject) => {
      this.queue.push({ ...job, resolve, reject });
      // The drain starts after this turn of the event loop, so passes submitted together meet.
      this.draining ??= new Promise<void>((r) => setImmediate(r)).then(() => this.drain()).finally(() => (this.draining = null));
    });
  }

  /** Resolves once no pass is waiting or running. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      if (this.batching && this.hooks.openSequences() > 1) await this.gather();
      if (!this.concurrencySeen && new Set(this.queue.map((q) => q.slot)).size > 1) {
        this.concurrencySeen = true;
        this.hooks.onFirstConcurrency();
      }
      const group = this.pick();
      for (const job of group) this.queue.splice(this.queue.indexOf(job), 1);
      if (group.length === 1) await this.runAlone(group[0]!);
      else await this.runGroup(group);
    }
  }

  /** Waits (at most COALESCE_MS) while open sequences have no pass waiting yet. */
  private async gather(): Promise<void> {
    const deadline = performance.now() + COALESCE_MS;
    while (new Set(this.queue.map((q) => q.slot)).size < this.hooks.openSequences() && performance.now() < deadline) {
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** The oldest pass and the waiting ones that fit a batch with it. */
  private pick(): Waiting[] {
    const first = this.queue[0]!;
    if (!this.batching || first.solo) return [first];
    const group = [first];
    const width = this.hooks.width();
    for (const job of this.queue.slice(1)) {
      if (group.length >= MAX_BATCH) break;
      if (job.solo || job.topK !== first.topK || group.some((g) => g.slot === job.slot)) continue;
      const candidate = [...group, job];
      const longest = Math.max(...candidate.map((j) => j.ids.length));
      const fed = candidate.reduce((n, j) => n + j.ids.length, 0);
      // Padding costs compute: a short pass joins long ones only while most of what runs is real.
      if (candidate.length * longest > 2 * fed + 8) continue;
      // Rows returned per sequence: the most any pass wants, plus right padding (see padding()).
      const rows = Math.max(...candidate.map((j) => j.wanted + padding(j, longest).right));
      if (candidate.length * rows * width * 4 > this.hooks.maxRowsBytes) continue;
      group.push(job);
    }
    return group;
  }

  private async runAlone(job: Waiting): Promise<void> {
    try {
      this.stats.soloRuns++;
      job.resolve(await this.hooks.runOne(job));
    } catch (error) {
      job.reject(error);
    }
  }

  private async runGroup(group: Waiting[]): Promise<void> {
    let pieces: RowsPiece[];
    const lengths = group.map((j) => j.slot.history.length);
    try {
      pieces = await this.hooks.runMany(group);
    } catch (error) {
      // onnxruntime refused the batched shape: nothing changed; the passes run one at a time.
      this.disable(`onnxruntime refused a batched run (${(error as Error).message.slice(0, 200)})`);
      for (const job of group) await this.runAlone(job);
      return;
    }
    this.stats.batchedRuns++;
    this.stats.batchedPasses += group.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, group.length);
    if (this.checked < CHECKED_RUNS) {
      // The first batched runs of the session are checked: the pass most padded in the run (the
      // one a graph that mixes rows would get most wrong) runs again alone, and its own rows stand.
      this.checked++;
      const i = mostPadded(group);
      const job = group[i]!;
      let difference: number;
      this.hooks.crop(job, lengths[i]!);
      try {
        const alone = await this.hooks.runOne(job);
        difference = largestDifference(pieces[i]!.data, alone.data);
        pieces[i] = alone;
      } catch (error) {
        job.reject(error);
        group.forEach((other, j) => j !== i && other.resolve(pieces[j]!));
        return;
      }
      if (!(difference <= CHECK_TOLERANCE)) {
        this.disable(`a batched run's logits differ from the same passes run alone by ${difference.toPrecision(3)} (relative), so the graph does not keep the sequences of a batch apart`);
        // The other passes hold the batched run's rows: roll them back and run them alone.
        for (let j = 0; j < group.length; j++) if (j !== i) this.hooks.crop(group[j]!, lengths[j]!);
        job.resolve(pieces[i]!);
        for (let j = 0; j < group.length; j++) if (j !== i) await this.runAlone(group[j]!);
        return;
      }
    }
    group.forEach((job, i) => job.resolve(pieces[i]!));
  }

  private disable(why: string): void {
    if (!this.batching) return;
    this.batching = false;
    this.hooks.onWarning(`${this.hooks.name}: ${why}; passes of generations running at once take turns from now on (one onnxruntime run each).`);
  }
}

/** Index of the pass with the most padding in a run (past and ids aligned to the longest); the first on ties. */
function mostPadded(group: readonly PassJob[]): number {
  const longestPast = Math.max(...group.map((j) => j.slot.history.length));
  const longest = Math.max(...group.map((j) => j.ids.length));
  let best = 0;
  let most = -1;
  group.forEach((j, i) => {
    const pad = longestPast - j.slot.history.length + longest - j.ids.length;
    if (pad > most) [best, most] = [i, pad];
  });
  return best;
}

/** Largest |a − b| over the rows, relative to the larger of 1 and the largest |a|. */
function largestDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let scale = 1;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (Math.abs(x) > scale && Math.abs(x) < 1e30) scale = Math.abs(x);
    const d = Math.abs(x - b[i]!);
    if (d > diff || Number.isNaN(d)) diff = Number.isNaN(d) ? Infinity : d;
  }
  return diff / scale;
}
