/**
 * langchain-safe-ensemble: run several local ONNX LLMs as one with SAFE.
 * @module
 */
export * from './errors.js';
export { loadModel, selectOnnxFile, type LoadModelOptions } from './runtime/loadModel.js';
export { DTYPE_SUFFIX, type ModelDType } from './runtime/dtypes.js';
export { CausalLM, Logits, type ModelInfo, type ForwardOptions } from './runtime/causalLM.js';
export { discoverGraph, type GraphContract, type CacheDType } from './runtime/graph.js';
export { type ExecutionOptions, type ExecutionProviderName, type ResolvedProviders } from './runtime/providers.js';
export { isHubId, type HubOptions } from './runtime/hub.js';
export { liveSessionCount } from './runtime/ort.js';
export { argmax, topK, logSumExp, logProbOf, probOf, isFiniteRow, float16ToFloat32, type TopK, type LogitsRow } from './runtime/distribution.js';
export { TextTokenizer, type TokenizerKind, type ChatMessage, type EncodeOptions, type TokenOffsets, type TokenizerLoadOptions } from './text/tokenizer.js';
export { utf8, fromUtf8, isCharBoundary, completeUtf8Prefix } from './text/bytes.js';
