/**
 * JSON over HTTP to an inference engine: Node's built-in fetch (keep-alive connections), a
 * timeout per request, the caller's AbortSignal passed through, bounded retries with backoff
 * where retrying can help (connection refused, 429, 503), an optional API key. Every failure is
 * a {@link RemoteEngineError} that names the member and the URL.
 *
 * The server is not trusted: answers are read as a stream and cut at a byte limit derived from
 * what the request asked for, redirects are refused, and any server text quoted in a message is
 * capped, stripped of control characters and redacted (the API key, `Bearer …` tokens).
 * @module
 */
import { InvalidArgumentError, RemoteEngineError } from '../errors.js';
import { FifoGate } from '../member/fifoGate.js';

/** How to reach a server. */
export interface RemoteConnectionOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:30000` (http or https; a trailing `/v1` is accepted; no credentials or query). */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>` (both engines' `--api-key`); never logged, traced or serialized. */
  apiKey?: string;
  /** Most milliseconds one request may take, response body included (default 60,000). */
  timeoutMs?: number;
  /** Retries after a refused connection, HTTP 429 or 503 (default 2; 0 disables). */
  retries?: number;
  /** First retry delay in milliseconds, doubled each retry (default 200). */
  retryDelayMs?: number;
  /** Most bytes one answer may have (default: 512 bytes per log-probability the request asks for, at least 8 MiB). */
  maxResponseBytes?: number;
  /** Most requests in flight to this server at once, from all generations together; the rest wait in order (default 32). */
  maxInFlight?: number;
}

/** Requests in flight to one server at once unless `maxInFlight` says otherwise. */
export const DEFAULT_MAX_IN_FLIGHT = 32;

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
/** Bytes allowed per log-probability a request asks for (an entry with its id, rank and token text, JSON-escaped). */
const BYTES_PER_ENTRY = 512;
/** The least any answer may have: metadata, texts and small requests fit many times over. */
const MIN_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Error bodies are read this far (only a short, cleaned excerpt is ever quoted). */
const ERROR_BODY_BYTES = 64 * 1024;
/** Most characters of server text quoted in a message. */
const QUOTE_CHARS = 300;

/**
 * Checks a server's base URL as declared and returns it normalized (trailing slash, an
 * OpenAI-style trailing `/v1` removed). The URL is never echoed back in an error: it may hold
 * what its author should not have put there.
 */
export function checkServerUrl(url: unknown, label: string): URL {
  if (typeof url !== 'string' || url === '') {
    throw new InvalidArgumentError('url', `${label}: url is required: the server's base URL, e.g. http://127.0.0.1:30000.`);
  }
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new InvalidArgumentError('url', `${label}: url is not a valid URL; pass the server's base URL, e.g. http://127.0.0.1:30000.`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new InvalidArgumentError('url', `${label}: url must use http or https (http://host:port), not ${quoteServerText(base.protocol, 20)}.`);
  }
  if (base.username || base.password) {
    throw new InvalidArgumentError('url', `${label}: url must not carry credentials (user:password@host): they would travel in every request and every error message. Pass apiKey instead (sent as Authorization: Bearer).`);
  }
  if (base.search || base.hash) {
    throw new InvalidArgumentError('url', `${label}: url must not have a query or fragment (?… or #…); pass the server's base URL, e.g. http://127.0.0.1:30000, and an API key as apiKey.`);
  }
  base.pathname = base.pathname.replace(/\/+$/, '').replace(/\/v1$/, '') + '/';
  return base;
}

/** The timing and size options of a connection, checked, with their defaults. */
export function checkConnectionOptions(options: Pick<RemoteConnectionOptions, 'timeoutMs' | 'retries' | 'retryDelayMs' | 'maxResponseBytes' | 'maxInFlight'>, label: string): { timeoutMs: number; retries: number; retryDelayMs: number; maxResponseBytes: number | null; maxInFlight: number } {
  const number = (name: string, v: unknown, fallback: number, min: number) => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new InvalidArgumentError(name, `${label}: ${name} must be a number >= ${min}, got ${typeof v === 'number' ? v : typeof v}.`);
    return v;
  };
  return {
    timeoutMs: number('timeoutMs', options.timeoutMs, 60_000, 1),
    retries: Math.floor(number('retries', options.retries, 2, 0)),
    retryDelayMs: number('retryDelayMs', options.retryDelayMs, 200, 0),
    maxResponseBytes: options.maxResponseBytes === undefined ? null : Math.floor(number('maxResponseBytes', options.maxResponseBytes, 0, 1024)),
    maxInFlight: Math.floor(number('maxInFlight', options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 1)),
  };
}

/** Checks an API key as declared (a non-empty string without line breaks). */
export function checkApiKey(apiKey: unknown, label: string): void {
  if (apiKey === undefined) return;
  if (typeof apiKey !== 'string' || apiKey === '' || /[\r\n\0]/.test(apiKey)) {
    throw new InvalidArgumentError('apiKey', `${label}: apiKey must be a non-empty string without line breaks (the key the server was started with, e.g. --api-key).`);
  }
}

/**
 * Server text made fit to quote: secrets (the given ones and any `Bearer …` token) redacted,
 * control and invisible formatting characters replaced by spaces, whitespace collapsed, at most
 * `max` characters.
 */
export function quoteServerText(text: string, max = QUOTE_CHARS, secrets: readonly string[] = []): string {
  let s = text;
  for (const secret of secrets) if (secret) s = s.split(secret).join('[redacted]');
  s = s.replace(/\b(Bearer|Basic|Token)(\s+|%20)[^\s"'`,;&)\]}]+/gi, '$1 [redacted]');
  s = s.replace(/[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]+/g, ' ');
  s = s.replace(/\s+/g, ' ').trim();
  if (s.length > max) {
    let cut = max;
    if (/[\ud800-\udbff]/.test(s[cut - 1]!)) cut--; // never half a surrogate pair
    s = `${s.slice(0, cut)}…`;
  }
  return s;
}

/** A JSON client for one server, owned by one member. */
export class RemoteClient {
  readonly base: URL;
  readonly traffic: RemoteTraffic = { requests: 0, bytesSent: 0, bytesReceived: 0, waitMs: 0, retries: 0 };
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly maxResponseBytes: number | null;
  /** Bounds the requests in flight (see RemoteConnectionOptions.maxInFlight). */
  private readonly inFlight: FifoGate;
  /** Kept out of every enumerable field: the client must not serialize or print its key. */
  readonly #apiKey: string | null;

  constructor(
    /** The member's label, for messages. */
    readonly member: string,
    options: RemoteConnectionOptions,
  ) {
    this.base = checkServerUrl(options.url, member);
    const checked = checkConnectionOptions(options, member);
    this.timeoutMs = checked.timeoutMs;
    this.retries = checked.retries;
    this.retryDelayMs = checked.retryDelayMs;
    this.maxResponseBytes = checked.maxResponseBytes;
    this.inFlight = new FifoGate(checked.maxInFlight);
    checkApiKey(options.apiKey, member);
    this.#apiKey = options.apiKey ?? null;
  }

  /** The absolute URL of `path` (relative to the base URL). */
  urlOf(path: string): string {
    return new URL(path.replace(/^\//, ''), this.base).toString();
  }

  /** Server text fit to quote in a message (see {@link quoteServerText}), the key redacted. */
  quote(text: string, max = QUOTE_CHARS): string {
    return quoteServerText(text, max, this.#apiKey ? [this.#apiKey] : []);
  }

  /**
   * POSTs `body` as JSON and returns the parsed JSON answer. `entries`: how many
   * log-probabilities the request asks for, which bounds the answer's size; `sink` also
   * counts the request's traffic (the generation it belongs to), besides {@link traffic}.
   */
  post(path: string, body: unknown, signal?: AbortSignal, entries = 0, sink?: RemoteTraffic): Promise<unknown> {
    return this.request('POST', path, JSON.stringify(body), signal, entries, sink);
  }

  /** GETs `path` and returns the parsed JSON answer. */
  get(path: string, signal?: AbortSignal): Promise<unknown> {
    return this.request('GET', path, undefined, signal, 0, undefined);
  }

  /** The most bytes an answer to a request for `entries` log-probabilities may have. */
  limitFor(entries: number): number {
    return this.maxResponseBytes ?? Math.max(MIN_RESPONSE_BYTES, entries * BYTES_PER_ENTRY);
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    return headers;
  }

  private async request(method: string, path: string, body: string | undefined, signal: AbortSignal | undefined, entries: number, sink: RemoteTraffic | undefined): Promise<unknown> {
    const url = this.urlOf(path);
    const limit = this.limitFor(entries);
    const count = (field: keyof RemoteTraffic, n: number) => {
      this.traffic[field] += n;
      if (sink) sink[field] += n;
    };
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new RequestAborted(signal.reason);
      // A turn among the requests in flight; waiting for it ends when the caller's signal fires.
      let leave: () => void;
      try {
        leave = await this.inFlight.enter(signal);
      } catch {
        throw new RequestAborted(signal?.reason);
      }
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const own = new AbortController(); // cuts the connection when the answer is too large
      const combined = AbortSignal.any(signal ? [signal, timeout, own.signal] : [timeout, own.signal]);
      const t0 = performance.now();
      count('requests', 1);
      if (body) count('bytesSent', Buffer.byteLength(body));
      let response: Response;
      let answer: BodyRead;
      try {
        try {
          response = await fetch(url, { method, headers: this.headers(), body, signal: combined, redirect: 'manual' });
        } catch (cause) {
          if (signal?.aborted) throw new RequestAborted(signal.reason);
          if (timeout.aborted) throw this.timedOut(url, cause);
          if (attempt < this.retries && refused(cause)) {
            await this.backoff(attempt, signal, sink);
            continue;
          }
          throw new RemoteEngineError('unreachable', url, `${this.member}: cannot reach ${url} (${this.quote(describe(cause), 80)}). Start the server or fix the url.`, { cause });
        }
        const status = response.status;
        if (status >= 300 && status < 400) {
          void response.body?.cancel().catch(() => undefined);
          throw new RemoteEngineError('http', url, `${this.member}: ${url} redirected (HTTP ${status}) to ${this.where(response.headers.get('location'), url)}. Inference engines never redirect, so the url points at something else (a proxy or a login page); point it at the engine itself.`, { status });
        }
        const ok = status >= 200 && status < 300;
        try {
          answer = await readBody(response, ok ? limit : ERROR_BODY_BYTES, !ok, own);
        } catch (cause) {
          if (signal?.aborted) throw new RequestAborted(signal.reason);
          if (timeout.aborted) throw this.timedOut(url, cause);
          throw new RemoteEngineError('interrupted', url, `${this.member}: ${url} closed the connection in the middle of its answer (HTTP ${status}, ${this.quote(describe(cause), 80)}). The server may have crashed or a proxy cut the answer; check the server's log.`, { cause, status });
        }
      } finally {
        count('waitMs', performance.now() - t0);
        leave();
      }
      count('bytesReceived', answer.bytes);
      const status = response.status;
      if (answer.over) {
        throw new RemoteEngineError('malformed', url, `${this.member}: ${url} sent an answer larger than ${limit} bytes for a request that asks for ${entries} log-probabilities; the connection was cut. If the server is right, raise maxResponseBytes.`, { status });
      }
      if (status < 200 || status >= 300) {
        if (attempt < this.retries && RETRY_STATUS.has(status)) {
          await this.backoff(attempt, signal, sink);
          continue;
        }
        throw new RemoteEngineError('http', url, `${this.member}: ${url} answered HTTP ${status}: ${this.serverMessage(answer.text)}`, { status });
      }
      try {
        return JSON.parse(answer.text) as unknown;
      } catch (cause) {
        throw new RemoteEngineError('malformed', url, `${this.member}: ${url} answered with a body that is not JSON ("${this.quote(answer.text, 80)}"). Is the url that of the engine's server?`, { cause, status });
      }
    }
  }

  private timedOut(url: string, cause: unknown): RemoteEngineError {
    return new RemoteEngineError('timeout', url, `${this.member}: ${url} did not answer within ${this.timeoutMs} ms. The server is overloaded or stalled; raise timeoutMs or check the server.`, { cause });
  }

  /** Where a redirect pointed, without credentials, query or fragment. */
  private where(location: string | null, from: string): string {
    if (!location) return 'nowhere (no Location header)';
    try {
      const to = new URL(location, from);
      return this.quote(`${to.protocol}//${to.host}${to.pathname}`, 120);
    } catch {
      return `"${this.quote(location, 80)}"`;
    }
  }

  /** The error message an engine put in its error body (both use `{"error": ...}` or `{"message": ...}`), fit to quote. */
  private serverMessage(text: string): string {
    let message: string | null = null;
    try {
      const body = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
      const error = body?.error as { message?: unknown } | string | undefined;
      message = typeof error === 'object' && error && typeof error.message === 'string' ? error.message : typeof error === 'string' ? error : typeof body?.message === 'string' ? body.message : typeof body?.detail === 'string' ? body.detail : null;
    } catch {
      // not JSON (or cut at the error-body limit): quote the text
    }
    return this.quote(message ?? text) || '(empty body)';
  }

  private async backoff(attempt: number, signal: AbortSignal | undefined, sink: RemoteTraffic | undefined): Promise<void> {
    this.traffic.retries++;
    if (sink) sink.retries++;
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

/** An answer's body as read: its text (up to the limit), how many bytes came, and whether it went past the limit. */
interface BodyRead {
  text: string;
  bytes: number;
  over: boolean;
}

/**
 * Reads a body as a stream, never holding more than `limit` bytes. Past the limit the
 * connection is cut; `truncate` keeps what came before it instead of reporting it as over.
 */
async function readBody(response: Response, limit: number, truncate: boolean, cut: AbortController): Promise<BodyRead> {
  const declared = Number(response.headers.get('content-length'));
  if (!truncate && Number.isFinite(declared) && declared > limit) {
    cut.abort();
    return { text: '', bytes: 0, over: true };
  }
  const reader = response.body?.getReader();
  if (!reader) return { text: '', bytes: 0, over: false };
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (bytes + value.byteLength > limit) {
      if (truncate) chunks.push(value.subarray(0, limit - bytes));
      bytes += value.byteLength;
      cut.abort();
      void reader.cancel().catch(() => undefined);
      return truncate ? { text: Buffer.concat(chunks).toString('utf8'), bytes, over: false } : { text: '', bytes, over: true };
    }
    chunks.push(value);
    bytes += value.byteLength;
  }
  return { text: Buffer.concat(chunks, bytes).toString('utf8'), bytes, over: false };
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
