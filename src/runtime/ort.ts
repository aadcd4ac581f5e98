/**
 * The one place that imports onnxruntime-node, so ESM and CJS builds see the same object
 * and live sessions can be counted.
 * @module
 */
import * as ortNamespace from 'onnxruntime-node';

type Ort = typeof ortNamespace;
// Under Node's ESM loader a CommonJS package may appear only as `default`.
export const ort: Ort = ((ortNamespace as unknown as { InferenceSession?: unknown }).InferenceSession
  ? ortNamespace
  : (ortNamespace as unknown as { default: Ort }).default);

export type InferenceSession = ortNamespace.InferenceSession;
export type Tensor = ortNamespace.Tensor;
export type SessionOptions = ortNamespace.InferenceSession.SessionOptions;

let liveSessions = 0;

/** Number of onnxruntime sessions created by this library and not yet disposed. */
export function liveSessionCount(): number {
  return liveSessions;
}

/** Creates a session and counts it as live. */
export async function createSession(path: string, options: SessionOptions): Promise<InferenceSession> {
  const session = await ort.InferenceSession.create(path, options);
  liveSessions++;
  return session;
}

/** Releases a session created by {@link createSession}. Safe to call once per session. */
export async function releaseSession(session: InferenceSession): Promise<void> {
  liveSessions--;
  await session.release();
}
