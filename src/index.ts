/**
 * langchain-safe-ensemble: run several LLMs — local ONNX models or models served by SGLang / vLLM — as one with SAFE.
 * @module
 */
export * from './errors.js';
export { loadModel, selectOnnxFile, type LoadModelOptions } from './runtime/loadModel.js';
export { DTYPE_SUFFIX, type ModelDType } from './runtime/dtypes.js';
export { CausalLM, Logits, type ModelInfo, type ForwardOptions, type ScoreOptions, type SeamTraffic, type ExecutionMode } from './runtime/causalLM.js';
export { Scores, RowScore, type ScoreRequest, type ScorePayload, type RowQuery, type RowAnswer } from './runtime/scores.js';
export type { ModelBackend, LogitsPayload } from './runtime/sessionRunner.js';
export { discoverGraph, type GraphContract, type CacheDType } from './runtime/graph.js';
export { type ExecutionOptions, type ExecutionProviderName, type ResolvedProviders } from './runtime/providers.js';
export { isHubId, type HubOptions } from './runtime/hub.js';
export { liveSessionCount } from './runtime/ort.js';
export { liveWorkerCount } from './runtime/workerBackend.js';
export { argmax, topK, logSumExp, logProbOf, probOf, isFiniteRow, float16ToFloat32, type TopK, type LogitsRow } from './runtime/distribution.js';
export { TextTokenizer, type TokenizerKind, type ChatMessage, type EncodeOptions, type TokenOffsets, type TokenizerLoadOptions } from './text/tokenizer.js';
export { utf8, fromUtf8, isCharBoundary, completeUtf8Prefix } from './text/bytes.js';
export { SafeEnsemble, type ModelSpec, type RemoteMemberSpec, type SafeEnsembleConfig, type SafeEnsembleLoadOptions } from './ensemble/safeEnsemble.js';
export {
  resolveOptions,
  DEFAULT_OPTIONS,
  OPTION_KEYS,
  type EnsembleOptions,
  type ResolvedOptions,
  type Strategy,
  type BaseEnsembler,
  type SharpeningMethod,
  type SharpeningOptions,
} from './ensemble/options.js';
export type { EnsembleResult, EnsembleStats, EnsembleChunk, FinishReason, PhaseTimes, TraceRecord, TraceCandidate, TraceModelEntry, MemberNetworkStats, SamplingStats, TraceAcceptance, TraceDraw } from './ensemble/types.js';
export type { RejectionRule } from './ensemble/sampling.js';
export type { Truncation, KeptSet, TruncatedRow } from './runtime/truncation.js';
export type { EnsembleInput, ModelPrompt } from './ensemble/prompt.js';
export type { EnsembleMember } from './ensemble/member.js';
export { loadRemoteModel, type RemoteModelSpec } from './remote/loadRemote.js';
export { RemoteMember, type RemoteEngine, type RemoteMemberStats } from './remote/remoteMember.js';
export type { RemoteConnectionOptions } from './remote/http.js';
export type { VllmScoring } from './remote/vllm.js';
export { uniteDistribution, planUnite, finishUnite, decide, GacUnion, topKeys, type ModelView, type UnionMember, type UnitePlan, type EnsembleDistribution, type EnsembleDecision } from './ensemble/aggregate.js';
export { Vocabulary, EOS_KEY, bytesKey, keyBytes, keyText, isBareSpace } from './ensemble/vocabulary.js';
export { encodeContinuation, ResponseTokenization, validUtf8Length, type TokenSpans, type EncodingContext } from './text/continuation.js';
export { consensusSkip, meanOwnProbability, stableAlignment, type ConsensusInput, type ConsensusRule } from './ensemble/gates.js';
export { SafeEnsembleLLM, type SafeEnsembleLLMParams, type SafeEnsembleLLMCallOptions } from './langchain/llm.js';
export { SafeEnsembleChatModel, toChatMessages, type SafeEnsembleChatModelParams, type SafeEnsembleChatModelCallOptions } from './langchain/chatModel.js';
export { type SafeEnsembleKnobs, type SafeEnsembleFields } from './langchain/common.js';
export { safeEnsembleImportsMap } from './langchain/importsMap.js';
export { parseToolCalls, toolCallStart, type ParsedToolCall, type ParsedInvalidToolCall, type ParsedOutput } from './langchain/toolCalls.js';
export { bundledModels, packageRoot, DEMO_MODEL_NAMES, ALL_DEMO_MODEL_NAMES } from './demo/models.js';
export { wordProblems, problemSet, extractAnswer, type WordProblem, type ProblemOptions } from './demo/wordProblems.js';
