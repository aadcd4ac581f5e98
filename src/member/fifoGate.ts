/**
 * A first-come, first-served gate: at most `limit` holders at once, the rest wait in arrival
 * order (none is overtaken, so none starves). A waiter whose signal fires leaves the line.
 * The ensemble admits generations through one; a served member bounds its requests in flight.
 * @module
 */

interface Waiter {
  admit: (leave: () => void) => void;
  refuse: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export class FifoGate {
  private holders = 0;
  private readonly line: Waiter[] = [];

  constructor(
    /** Most holders at once (at least 1). */
    readonly limit: number,
  ) {}

  /** Holders now. */
  get active(): number {
    return this.holders;
  }

  /** Callers waiting now. */
  get waiting(): number {
    return this.line.length;
  }

  /**
   * Resolves with the function that lets the next one in, once it is this caller's turn; rejects
   * with the signal's reason when the signal fires first (the caller never held the gate).
   */
  enter(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.holders < this.limit && this.line.length === 0) {
      this.holders++;
      return Promise.resolve(this.leaveOnce());
    }
    return new Promise<() => void>((admit, refuse) => {
      const waiter: Waiter = {
        admit,
        refuse,
        signal,
        onAbort: () => {
          const at = this.line.indexOf(waiter);
          if (at >= 0) this.line.splice(at, 1);
          refuse(signal!.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.line.push(waiter);
    });
  }

  private leaveOnce(): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.line.shift();
      if (!next) {
        this.holders--;
        return;
      }
      // The slot passes straight to the next in line: no one arriving meanwhile can take it.
      next.signal?.removeEventListener('abort', next.onAbort);
      next.admit(this.leaveOnce());
    };
  }
}
