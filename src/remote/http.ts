/**
 * JSON over HTTP to an inference engine: Node's built-in fetch (keep-alive connections), a
 * timeout per request, the caller's AbortSignal passed through, bounded retries with backoff
 * where retrying can help (connection refused, 429, 503), an optional API key. Every failure is
 * a {@link RemoteEngineError} that names the member and the URL.
 * @module
 */
import { InvalidArgumentError, RemoteEngineError } from '../errors.js';

/** How to reach a server. */
export interface RemoteConnectionOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:30000` (http or https). */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>` (both engines' `--api-key`). */
  apiKey?: string;
  /** Most milliseconds one request may take, response body included (default 60,000). */
  timeoutMs?: number;
  /** Retries after a refused connection, HTTP 429 or 503 (default 2; 0 disables). */
  retries?: number;
  /** First retry delay in milliseconds, doubled each retry (default 200). */
  retryDelayMs?: number;
}

/** What one member's requests cost, for the ensemble's statistics. */
export interface RemoteTraffic {
  /** Requests sent (retries included). */
  requests: number;
  /** Bytes of request bodies sent. */
  bytesSent: number;
  /** Bytes of response bodies received. */
  bytesReceived: number;
  /** Milliseconds spent waiting on the network and the server. */
  waitMs: number;
  /** Retries after a refused connection, 429 or 503. */
  retries: number;
}

/** The request was cut short by the caller's signal (the generation stops; not an engine fault). */
export class RequestAborted extends Error {
  constructor(readonly reason: unknown) {
    super('request aborted');
  }
}

const RETRY_STATUS = new Set([429, 503]);

/** A JSON client for one server, owned by one member. */
export class RemoteClient {
  readonly base: URL;
  readonly traffic: RemoteTraffic = { requests: 0, bytesSent: 0, bytesReceived: 0, waitMs: 0, retries: 0 };
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly headers: Record<string, string>;

  constructor(
    /** The member's label, for messages. */
    readonly member: string,
    options: RemoteConnectionOptions,
  ) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new InvalidArgumentError('url', `${member}: url must be an http(s) URL such as http://127.0.0.1:30000, got ${JSON.stringify(options.url)}.`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new InvalidArgumentError('url', `${member}: url must use http or https, got ${base.protocol}`);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base;
    const positive = (name: string, v: number | undefined, fallback: number, min: number) => {
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new InvalidArgumentError(name, `${member}: ${name} must be a number >= ${min}, got ${String(v)}.`);
      return v;
    };
    this.timeoutMs = positive('timeoutMs', options.timeoutMs, 60_000, 1);
    this.retries = Math.floor(positive('retries', options.retries, 2, 0));
    this.retryDelayMs = positive('retryDelayMs', options.retryDelayMs, 200, 0);
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (options.apiKey !== undefined) {
      if (typeof options.apiKey !== 'string' || options.apiKey === '') throw new InvalidArgumentError('apiKey', `${member}: apiKey must be a non-empty string.`);
      this.headers.authorization = `Bearer ${options.apiKey}`;
    }
  }

  /** The absolute URL of `path` (relative to the base URL). */
  urlOf(path: string): string {
    return new URL(path.replace(/^\//, ''), this.base).toString();
  }

  /** POSTs `body` as JSON and returns the parsed JSON answer. */
  post(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    return this.request('POST', path, JSON.stringify(body), signal);
  }

  /** GETs `path` and returns the parsed JSON answer. */
  get(path: string, signal?: AbortSignal): Promise<unknown> {
    return this.request('GET', path, undefined, signal);
  }

  private async request(method: string, path: string, body: string | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    const url = this.urlOf(path);
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new RequestAborted(signal.reason);
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      const t0 = performance.now();
      this.traffic.requests++;
      if (body) this.traffic.bytesSent += Buffer.byteLength(body);
      let status = 0;
      let text: string;
      try {
        const response = await fetch(url, { method, headers: this.headers, body, signal: combined });
        status = response.status;
        text = await response.text();
      } catch (cause) {
        if (signal?.aborted) throw new RequestAborted(signal.reason);
        if (timeout.aborted) {
          throw new RemoteEngineError('timeout', url, `${this.member}: ${url} did not answer within ${this.timeoutMs} ms. The server is overloaded or stalled; raise timeoutMs or check the server.`, { cause });
        }
        if (attempt < this.retries && refused(cause)) {
          await this.backoff(attempt, signal);
          continue;
        }
        throw new RemoteEngineError('unreachable', url, `${this.member}: cannot reach ${url} (${describe(cause)}). Start the server or fix the url.`, { cause });
      } finally {
        this.traffic.waitMs += performance.now() - t0;
      }
      this.traffic.bytesReceived += Buffer.byteLength(text);
      if (status < 200 || status >= 300) {
        if (attempt < this.retries && RETRY_STATUS.has(status)) {
          await this.backoff(attempt, signal);
          continue;
        }
        throw new RemoteEngineError('http', url, `${this.member}: ${url} answered HTTP ${status}: ${serverMessage(text)}`, { status });
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (cause) {
        throw new RemoteEngineError('malformed', url, `${this.member}: ${url} answered with a body that is not JSON (${JSON.stringify(text.slice(0, 80))}…). Is the url that of the engine's server?`, { cause, status });
      }
    }
  }

  private async backoff(attempt: number, signal: AbortSignal | undefined): Promise<void> {
    this.traffic.retries++;
    const ms = this.retryDelayMs * 2 ** attempt;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/** Whether a fetch failure is a refused (or reset before any answer) connection. */
function refused(cause: unknown): boolean {
  const code = (cause as { cause?: { code?: string } })?.cause?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET';
}

function describe(cause: unknown): string {
  const inner = (cause as { cause?: { code?: string; message?: string } })?.cause;
  return inner?.code ?? inner?.message ?? (cause as Error)?.message ?? String(cause);
}

/** The error message an engine put in its error body (both use `{"error": ...}` or `{"message": ...}`). */
function serverMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown; object?: unknown };
    const error = body.error as { message?: unknown } | string | undefined;
    const message = typeof error === 'object' && error && typeof error.message === 'string' ? error.message : typeof error === 'string' ? error : typeof body.message === 'string' ? body.message : typeof body.detail === 'string' ? body.detail : null;
    if (message) return message;
  } catch {
    // not JSON: show the text
  }
  return text.slice(0, 300) || '(empty body)';
}
