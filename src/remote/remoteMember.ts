/**
 * An ensemble member served by an inference engine. The token sequences live here (the server
 * keeps none between requests: its prefix cache only makes resending cheap): the member's own
 * and one per generation running at once (remoteSequence.ts), whose requests travel
 * concurrently, at most `maxInFlight` at a time, for the server to batch. Rows come back as
 * log-probabilities, so each row's normalizer is known (0) and whole rows never are: GaC
 * cannot use a remote member. The engine-specific protocol lives in sglang.ts and vllm.ts.
 * @module
 */
import type { EnsembleMember, ScoreOptions } from '../member/member.js';
import type { Scores } from '../member/scores.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import type { RemoteClient, RemoteConnectionOptions } from './http.js';
import { freshRemoteStats, type RemoteEngine, type RemoteMemberStats, type RemoteProtocol } from './protocol.js';
import { RemoteSequence, type RemoteOwner } from './remoteSequence.js';

export type { RemoteEngine, RemoteMemberStats };

/** A member whose model is served by an inference engine (see `loadRemoteModel`). */
export class RemoteMember implements EnsembleMember {
  readonly runsConcurrently = true;
  /** Rows are log-probabilities of some ids: whole rows cannot be read (GaC needs them). */
  readonly wholeRows = false;
  /** Running totals of every request to the server, from all sequences. */
  readonly stats: RemoteMemberStats;
  /** The member's own sequence (what {@link score}, {@link draft} and {@link crop} use). */
  private readonly own: RemoteSequence;
  private readonly open = new Set<RemoteSequence>();
  private readonly owner: RemoteOwner;
  private closed = false;

  /** @internal Members are created by `loadRemoteModel`, which checks the server first. */
  constructor(
    /** Label for messages and traces (`engine:url`). */
    readonly name: string,
    /** Which engine serves it. */
    readonly engine: RemoteEngine,
    readonly tokenizer: TextTokenizer,
    readonly maxPositions: number,
    private readonly client: RemoteClient,
    protocol: RemoteProtocol,
  ) {
    // One object: the client counts requests, the protocol and the sequences the rest.
    this.stats = Object.assign(client.traffic, { boundedLogprobs: 0, cachedTokens: 0, ...(client.traffic as Partial<RemoteMemberStats>) }) as RemoteMemberStats;
    const member = this;
    this.owner = {
      name,
      engine,
      tokenizer,
      maxPositions,
      protocol,
      totals: this.stats,
      get url() {
        return member.url;
      },
      get disposed() {
        return member.closed;
      },
    };
    this.own = new RemoteSequence(this.owner, this.stats);
  }

  /** The server's base URL. */
  get url(): string {
    return this.client.base.toString();
  }

  get tokens(): readonly number[] {
    return this.own.tokens;
  }

  get length(): number {
    return this.own.length;
  }

  get disposed(): boolean {
    return this.closed;
  }

  score(ids: readonly number[], options: ScoreOptions & { signal?: AbortSignal } = {}): Promise<Scores> {
    return this.own.score(ids, options);
  }

  /**
   * Appends `ids` and lets the server draft up to `n` tokens greedily in one request (it stops
   * after an end-of-sequence token): row `i` predicts drafted token `i` (its `best`), and the
   * sequence then holds the drafted tokens too. The engine drafts a chunk this way instead of
   * one request per token.
   */
  draft(ids: readonly number[], n: number, options: { topK?: number; signal?: AbortSignal } = {}): Promise<Scores> {
    return this.own.draft(ids, n, options);
  }

  crop(length: number): void {
    this.own.crop(length);
  }

  /**
   * A sequence of its own for one generation: its requests run alongside other generations'
   * (up to the connection's `maxInFlight`), and its `stats` count only its requests.
   */
  openSequence(): RemoteSequence {
    const sequence = new RemoteSequence(this.owner, freshRemoteStats(), (s) => this.open.delete(s));
    this.open.add(sequence);
    return sequence;
  }

  /** Sequences opened and not closed yet. */
  get openSequences(): number {
    return this.open.size;
  }

  async dispose(): Promise<void> {
    this.closed = true;
    this.own.close();
    for (const s of [...this.open]) s.close();
  }
}

export type { RemoteConnectionOptions };
