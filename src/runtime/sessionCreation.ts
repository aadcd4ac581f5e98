/**
 * Creating a model's onnxruntime session from the file or a rewritten graph, with load errors
 * named after the model's files. Kept apart from openSession.ts so a member worker can start
 * creating the session before it imports the rest of the runtime (which it needs only after).
 * @module
 */
import { basename, dirname, join } from 'node:path';
import { ModelFileInvalidError, ModelFileMissingError, SafeEnsembleError } from '../errors.js';
import type { InferenceSession } from './ort.js';
import { createSessionWithProviders, type ExecutionOptions, type ResolvedProviders } from './providers.js';

/** A created session and the providers it runs on. */
export interface CreatedSession {
  session: InferenceSession;
  resolved: ResolvedProviders;
}

/**
 * Creates a session from `model` (a path or the graph's bytes); `transposedCache` says the graph
 * was rewritten for the incremental cache (some optimizers must then stay off).
 */
export function createModelSession(model: string | Uint8Array, onnxFile: string, execution: ExecutionOptions, transposedCache: boolean): Promise<CreatedSession> {
  return createSessionWithProviders(model, execution, classifySessionError(onnxFile), { transposedCache });
}

/** Turns onnxruntime's load errors into typed errors that name the model's file and the fix. */
function classifySessionError(onnxFile: string): (error: unknown) => Error {
  return (error: unknown) => {
    if (error instanceof SafeEnsembleError) return error;
    const msg = String((error as Error)?.message ?? error);
    const external = /external data|\.onnx_data|GetExternalDataInfo|ExternalData|model_path must not be empty/i.exec(msg);
    if (external || /No such file|cannot open|could not open|doesn't exist|does not exist/i.test(msg)) {
      // Named next to the model (a rewritten graph is loaded from a temporary folder of links).
      const named = /([^\s'"]+\.onnx_data[^\s'"]*)/.exec(msg)?.[1];
      const path = named ? join(dirname(onnxFile), basename(named)) : `${onnxFile}_data`;
      return new ModelFileMissingError(path, `${onnxFile} refers to external weight data that could not be read (${msg.split('\n')[0]}). Put the *.onnx_data file(s) next to the .onnx file.`, { cause: error });
    }
    return new ModelFileInvalidError(onnxFile, `onnxruntime could not load ${onnxFile}: ${msg.split('\n')[0]}. The file may be truncated or not an ONNX model; re-export or re-download it.`, { cause: error });
  };
}
