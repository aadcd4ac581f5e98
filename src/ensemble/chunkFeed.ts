/**
 * A one-producer, one-consumer queue between a generation that runs on its own and the
 * iterator that reads it. The producer never waits for the consumer, so a consumer that stops
 * reading (abort, break, throw, abandoned iterator) cannot hold up the generation or its lock.
 * @module
 */

/** Items pushed by a producer, read in order; the end or an error closes it. */
export class ChunkFeed<T> {
  private readonly items: T[] = [];
  private head = 0;
  private closed = false;
  private error: unknown = null;
  private waiter: (() => void) | null = null;

  /** Appends an item (ignored once closed). */
  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.wake();
  }

  /** Marks the end: readers get the remaining items, then `done`. */
  end(): void {
    this.closed = true;
    this.wake();
  }

  /** Ends with an error: readers get the remaining items, then the error. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.error = error ?? new Error('generation failed');
    this.closed = true;
    this.wake();
  }

  /** The reader left: remaining items are dropped and a waiting {@link next} gets `done` at once. */
  cancel(): void {
    this.items.length = 0;
    this.head = 0;
    this.error = null;
    this.closed = true;
    this.wake();
  }

  /** The next item, or `done` after the end; rejects with the producer's error. */
  async next(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      if (this.head < this.items.length) {
        const item = this.items[this.head]!;
        // Drop read items, so a long generation read as it goes keeps nothing behind.
        this.items[this.head++] = undefined as T;
        if (this.head > 64 && this.head * 2 > this.items.length) {
          this.items.splice(0, this.head);
          this.head = 0;
        }
        return { value: item, done: false };
      }
      if (this.closed) {
        if (this.error !== null) throw this.error;
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

/**
 * An async iterator over a feed that can be left at once: `return()` and `throw()` settle
 * immediately, even while a `next()` waits (an async generator would queue them behind it), and
 * call `onLeave` so the producer stops. The feed is created by the first `next()`.
 */
export class FeedIterator<T> implements AsyncGenerator<T, void> {
  private feed: ChunkFeed<T> | null = null;
  private finished = false;

  constructor(
    private readonly start: () => ChunkFeed<T>,
    private readonly onLeave: () => void,
  ) {}

  async next(): Promise<IteratorResult<T, void>> {
    if (this.finished) return { done: true, value: undefined };
    try {
      this.feed ??= this.start();
      const item = await this.feed.next();
      if (!item.done) return item;
    } catch (error) {
      this.leave();
      throw error;
    }
    this.leave();
    return { done: true, value: undefined };
  }

  async return(): Promise<IteratorResult<T, void>> {
    this.leave();
    return { done: true, value: undefined };
  }

  async throw(error: unknown): Promise<IteratorResult<T, void>> {
    this.leave();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** `await using` support: leaving the scope leaves the stream. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.leave();
  }

  private leave(): void {
    if (this.finished) return;
    this.finished = true;
    this.feed?.cancel();
    this.onLeave();
  }
}
