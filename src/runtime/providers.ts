/**
 * Execution providers: CPU by default, CUDA where its provider library is installed, with an
 * explicit, logged fallback to CPU when the caller allows it.
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ExecutionProviderError } from '../errors.js';
import { moduleFile } from './moduleFile.js';
import { createSession, ort, type InferenceSession, type SessionOptions } from './ort.js';

/** Execution provider names accepted by {@link ExecutionOptions.executionProviders}. */
export type ExecutionProviderName = 'cpu' | 'cuda' | 'webgpu' | 'tensorrt' | 'dml' | 'coreml';

/** Where and how a model runs. */
export interface ExecutionOptions {
  /** Providers in order of preference (default `['cpu']`). */
  executionProviders?: ExecutionProviderName[];
  /** GPU index for CUDA/TensorRT (default 0). */
  deviceId?: number;
  /** When a requested accelerator cannot be loaded, warn once and run on CPU instead of throwing. */
  fallbackToCpu?: boolean;
  /** Intra-op threads (default: onnxruntime's choice, i.e. the number of cores). */
  threads?: number;
  /** Graph optimization level (default `all`). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Let idle onnxruntime worker threads busy-wait for the next run (default false). Spinning
   * helps one model running back to back, but with several models taking turns (an ensemble)
   * the idle sessions' spinning threads steal the cores the running one needs.
   */
  spinWait?: boolean;
  /** Extra onnxruntime session options, merged last. */
  sessionOptions?: SessionOptions;
  /** Receives warnings such as the CPU fallback notice (default `console.warn`). */
  onWarning?: (message: string) => void;
}

/** The providers a session actually runs with. */
export interface ResolvedProviders {
  /** Provider names in effect, e.g. `['cuda', 'cpu']`. */
  providers: ExecutionProviderName[];
  /** True when an accelerator was requested but the CPU fallback was taken. */
  fellBack: boolean;
}

const ACCELERATORS = new Set<ExecutionProviderName>(['cuda', 'tensorrt', 'webgpu', 'dml', 'coreml']);

function installHint(provider: string): string {
  if (provider === 'cuda' || provider === 'tensorrt') {
    return `Install onnxruntime-node's ${provider.toUpperCase()} provider on a machine with internet access: ` +
      '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node` (needs an NVIDIA driver and CUDA 12 runtime libraries), ' +
      'or pass `fallbackToCpu: true` to run on CPU.';
  }
  return `The ${provider} provider is not available in this onnxruntime-node build; pass executionProviders: ['cpu'] or fallbackToCpu: true.`;
}

/** onnxruntime's names of the providers, as its per-provider optimizer passes are named. */
const ORT_PROVIDER_NAMES: Record<ExecutionProviderName, string> = {
  cpu: 'CPUExecutionProvider',
  cuda: 'CUDAExecutionProvider',
  tensorrt: 'TensorrtExecutionProvider',
  webgpu: 'WebGpuExecutionProvider',
  dml: 'DmlExecutionProvider',
  coreml: 'CoreMLExecutionProvider',
};

/**
 * Session settings for a graph the library rewrote to take its KV cache sequence-major (see
 * cacheRewrite.ts). onnxruntime's transpose optimizer would move the added Transposes into the
 * attention computation, after which onnxruntime places its float16 → float32 casts
 * differently: logits then differ from the graph as exported (up to a few float16 steps; ~1e-5
 * in float32 graphs). With it off the rewritten graph computes exactly what the exported one does.
 */
export interface RewrittenGraphSettings {
  /** The graph has the library's transposed past inputs. */
  transposedCache: boolean;
}

function disabledOptimizers(providers: ExecutionProviderName[], rewrite: RewrittenGraphSettings | undefined, extra: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!rewrite?.transposedCache) return {};
  const own = (extra?.optimization as Record<string, unknown> | undefined)?.disable_specified_optimizers;
  // onnxruntime reads this entry as a ';'-separated list.
  const names = ['TransposeOptimizer', ...providers.map((p) => `TransposeOptimizer_${ORT_PROVIDER_NAMES[p]}`), ...(typeof own === 'string' && own ? own.split(';') : [])];
  return { optimization: { ...(extra?.optimization as Record<string, unknown> | undefined), disable_specified_optimizers: [...new Set(names)].join(';') } };
}

function buildSessionOptions(providers: ExecutionProviderName[], opts: ExecutionOptions, rewrite?: RewrittenGraphSettings): SessionOptions {
  const eps = providers.map((name) => (name === 'cuda' || name === 'tensorrt' ? { name, deviceId: opts.deviceId ?? 0 } : name));
  const extra = opts.sessionOptions?.extra as Record<string, unknown> | undefined;
  return {
    executionProviders: eps as SessionOptions['executionProviders'],
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    ...(opts.threads !== undefined ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    ...opts.sessionOptions,
    extra: {
      session: { intra_op: { allow_spinning: opts.spinWait ? '1' : '0' }, inter_op: { allow_spinning: opts.spinWait ? '1' : '0' } },
      ...extra,
      ...disabledOptimizers(providers, rewrite, extra),
    },
  };
}

/**
 * Creates an onnxruntime session with the requested providers. onnxruntime-node does not
 * fall back by itself (`['cuda','cpu']` throws when CUDA is missing), so this does it
 * explicitly, once, with a warning, and only when `fallbackToCpu` is set.
 */
export async function createSessionWithProviders(
  modelPath: string | Uint8Array,
  opts: ExecutionOptions,
  classifyLoadError: (error: unknown) => Error,
  rewrite?: RewrittenGraphSettings,
): Promise<{ session: InferenceSession; resolved: ResolvedProviders }> {
  const requested: ExecutionProviderName[] = opts.executionProviders?.length ? [...opts.executionProviders] : ['cpu'];
  const accelerator = requested.find((p) => ACCELERATORS.has(p));
  const supported = new Set(ort.listSupportedBackends().map((b) => b.name));
  if (accelerator && !supported.has(accelerator)) {
    return fallBackOrThrow(accelerator, new Error(`onnxruntime-node lists no "${accelerator}" backend on ${process.platform}/${process.arch}`));
  }
  const library = accelerator ? providerLibrary(accelerator) : null;
  if (library && !existsSync(library)) {
    return fallBackOrThrow(accelerator!, new Error(`${library} is not installed`));
  }
  try {
    const session = await createSession(modelPath, buildSessionOptions(requested, opts, rewrite));
    return { session, resolved: { providers: requested, fellBack: false } };
  } catch (error) {
    if (accelerator && isProviderLoadError(error)) return fallBackOrThrow(accelerator, error);
    throw classifyLoadError(error);
  }

  async function fallBackOrThrow(provider: ExecutionProviderName, cause: unknown) {
    const message = `Execution provider "${provider}" is unavailable (${(cause as Error).message?.split('\n')[0]}). ${installHint(provider)}`;
    if (!opts.fallbackToCpu) throw new ExecutionProviderError(provider, message, { cause });
    (opts.onWarning ?? console.warn)(`[langchain-safe-ensemble] ${message} Falling back to CPU.`);
    try {
      const session = await createSession(modelPath, buildSessionOptions(['cpu'], opts, rewrite));
      return { session, resolved: { providers: ['cpu'] as ExecutionProviderName[], fellBack: true } };
    } catch (error) {
      throw classifyLoadError(error);
    }
  }
}

/**
 * Path of the provider's shared library next to onnxruntime-node's binding, when it can be
 * located (CUDA and TensorRT ship outside the npm package). Null when unknown.
 */
function providerLibrary(provider: ExecutionProviderName): string | null {
  if (provider !== 'cuda' && provider !== 'tensorrt') return null;
  try {
    const base = moduleFile || join(process.cwd(), 'index.js');
    const main = createRequire(base).resolve('onnxruntime-node');
    const bin = join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
    if (!existsSync(bin)) return null;
    const ext = process.platform === 'win32' ? 'dll' : 'so';
    const prefix = process.platform === 'win32' ? '' : 'lib';
    return join(bin, `${prefix}onnxruntime_providers_${provider}.${ext}`);
  } catch {
    return null;
  }
}

function isProviderLoadError(error: unknown): boolean {
  const msg = String((error as Error)?.message ?? error);
  return /shared library|ExecutionProvider|execution provider|libonnxruntime_providers|CUDA|cuda|not supported backend|Unsupported/i.test(msg);
}
