/**
 * langchain-safe-ensemble: run several LLMs — local ONNX models or models served by SGLang / vLLM — as one with SAFE.
 *
 * The package root is the stable surface: the two LangChain classes, the engine
 * (`SafeEnsemble`), loading members (`loadModel`, `loadRemoteModel`), the member and constraint
 * seams for writing your own, the bundled demo models and the error classes. Building blocks for
 * research (the ensemble math, vocabularies, tokenizer, row readers) are behind
 * `langchain-safe-ensemble/research`, which may change in minor versions.
 * @module
 */
export {
  SafeEnsembleError,
  ModelNotFoundError,
  ModelFileMissingError,
  ModelFileInvalidError,
  UnsupportedGraphError,
  TokenizerError,
  ExecutionProviderError,
  InvalidArgumentError,
  DisposedError,
  InferenceError,
  ContextOverflowError,
  WorkerError,
  RemoteEngineError,
} from './errors.js';
export { SafeEnsembleLLM, type SafeEnsembleLLMParams, type SafeEnsembleLLMCallOptions } from './langchain/llm.js';
export { SafeEnsembleChatModel, type SafeEnsembleChatModelParams, type SafeEnsembleChatModelCallOptions } from './langchain/chatModel.js';
export { safeEnsembleImportsMap } from './langchain/importsMap.js';
export { SafeEnsemble, type ModelSpec, type SafeEnsembleConfig } from './ensemble/safeEnsemble.js';
export type { EnsembleOptions } from './ensemble/options.js';
export type { EnsembleResult, EnsembleStats } from './ensemble/types.js';
export type { TextConstraint } from './ensemble/constraint.js';
export { loadModel, type LoadModelOptions } from './runtime/loadModel.js';
export { CausalLM } from './runtime/causalLM.js';
export { loadRemoteModel, type RemoteModelSpec } from './remote/loadRemote.js';
export { RemoteMember } from './remote/remoteMember.js';
export type { EnsembleMember } from './member/member.js';
export { bundledModels } from './demo/models.js';
