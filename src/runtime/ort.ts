/**
 * The one place that imports onnxruntime-node, so ESM and CJS builds see the same object
 * and live sessions can be counted.
 * @module
 */
import * as ortNamespace from 'onnxruntime-node';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { runInThisContext } from 'node:vm';
import { moduleFile } from './moduleFile.js';

type Ort = typeof ortNamespace;
// Under Node's ESM loader a CommonJS package may appear only as `default`.
export const ort: Ort = ((ortNamespace as unknown as { InferenceSession?: unknown }).InferenceSession
  ? ortNamespace
  : (ortNamespace as unknown as { default: Ort }).default);

export type InferenceSession = ortNamespace.InferenceSession;
export type Tensor = ortNamespace.Tensor;
export type SessionOptions = ortNamespace.InferenceSession.SessionOptions;

let liveSessions = 0;

/**
 * Number of onnxruntime sessions created by this library and not yet disposed, on this thread
 * and in the member workers it started.
 */
export function liveSessionCount(): number {
  return liveSessions;
}

/** Counts a session opened (+1) or released (-1) inside a member worker. */
export function countWorkerSession(delta: 1 | -1): void {
  liveSessions += delta;
}

/**
 * True when this module runs in another V8 realm than Node's main one (Jest's stock `node`
 * test environment, `vm` contexts): onnxruntime-node's binding then returns main-realm typed
 * arrays, which fail onnxruntime-common's `instanceof Float32Array` check in this realm.
 */
const foreignRealm = (() => {
  try {
    return runInThisContext('Float32Array') !== Float32Array;
  } catch {
    return false;
  }
})();

/**
 * In a foreign realm, lets onnxruntime-common accept typed arrays of either realm: the native
 * binding builds output tensors from main-realm arrays, while this realm builds the inputs.
 * Each element type's constructor in onnxruntime-common's type table is swapped for a subclass
 * whose `instanceof` accepts both (onnxruntime-node 1.30's CommonJS layout).
 */
function acceptTypedArraysOfBothRealms(): void {
  let table: Map<string, unknown> | undefined;
  try {
    const req = createRequire(moduleFile || join(process.cwd(), 'index.js'));
    const common = req.resolve('onnxruntime-common', { paths: [dirname(req.resolve('onnxruntime-node'))] });
    const mapping = req(join(dirname(common), 'tensor-impl-type-mapping.js')) as { NUMERIC_TENSOR_TYPE_TO_TYPEDARRAY_MAP?: Map<string, unknown>; checkTypedArray?: () => void };
    // int64, uint64 and float16 enter the table lazily, at the first tensor: add them now.
    mapping.checkTypedArray?.();
    table = mapping.NUMERIC_TENSOR_TYPE_TO_TYPEDARRAY_MAP;
  } catch {
    return; // layout changed: forward() reports the realm problem with the fix
  }
  if (!table) return;
  for (const [type, ctor] of table) {
    const local = ctor as { new (...a: unknown[]): object; name: string; [realmTolerant]?: true };
    if (typeof local !== 'function' || local[realmTolerant]) continue;
    const main = runInThisContext(local.name) as unknown;
    if (typeof main !== 'function' || main === local) continue;
    const ofLocal = (v: unknown) => Function.prototype[Symbol.hasInstance].call(local, v);
    const ofMain = (v: unknown) => Function.prototype[Symbol.hasInstance].call(main, v);
    const tolerant = class extends local {
      static [realmTolerant] = true as const;
      static [Symbol.hasInstance](v: unknown): boolean {
        return ofLocal(v) || ofMain(v);
      }
    };
    Object.defineProperty(tolerant, 'name', { value: local.name });
    table.set(type, tolerant);
  }
}
const realmTolerant = Symbol('realmTolerant');
if (foreignRealm) acceptTypedArraysOfBothRealms();

/** Creates a session and counts it as live. */
export async function createSession(model: string | Uint8Array, options: SessionOptions): Promise<InferenceSession> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  liveSessions++;
  return session;
}

/** Releases a session created by {@link createSession}. Safe to call once per session. */
export async function releaseSession(session: InferenceSession): Promise<void> {
  liveSessions--;
  await session.release();
}
