/**
 * Building blocks behind `langchain-safe-ensemble/research`: the pieces the engine is made of,
 * for experiments and for writing members and constraints — row readers ({@link Scores}),
 * distributions and truncation, vocabularies and the ensemble math (UniTE, GaC, the gates),
 * the tokenizer and continuation encoding, the types of traces and statistics, and the
 * inspection helpers the tests and benchmarks use.
 *
 * Not the stable surface: names here may change in a minor version (the package root's do not).
 * @module
 */
export type { SafeEnsembleErrorCode, RemoteFailure } from './errors.js';
export { selectOnnxFile } from './runtime/loadModel.js';
export { DTYPE_SUFFIX, type ModelDType } from './runtime/dtypes.js';
export { Logits, type ModelInfo, type ForwardOptions, type SeamTraffic, type ExecutionMode } from './runtime/causalLM.js';
export type { ScoreOptions, MemberNetworkStats, MemberSequence, SequenceModel } from './member/member.js';
export { Scores, RowScore, type ScoreRequest, type ScorePayload, type RowQuery, type RowAnswer } from './member/scores.js';
export type { ModelBackend, LogitsPayload } from './runtime/sessionRunner.js';
export { discoverGraph, type GraphContract, type CacheDType } from './runtime/graph.js';
export { type ExecutionOptions, type ExecutionProviderName, type ResolvedProviders } from './runtime/providers.js';
export { isHubId, type HubOptions } from './runtime/hub.js';
export { liveSessionCount } from './runtime/ort.js';
export { liveWorkerCount } from './runtime/workerBackend.js';
export { argmax, topK, logSumExp, logProbOf, probOf, isFiniteRow, float16ToFloat32, type TopK, type LogitsRow } from './member/distribution.js';
export type { Truncation, KeptSet, TruncatedRow } from './member/truncation.js';
export { TextTokenizer, type TokenizerKind, type ChatMessage, type EncodeOptions, type TokenOffsets, type TokenizerLoadOptions } from './text/tokenizer.js';
export { utf8, fromUtf8, isCharBoundary, completeUtf8Prefix } from './text/bytes.js';
export { encodeContinuation, ResponseTokenization, validUtf8Length, type TokenSpans, type EncodingContext } from './text/continuation.js';
export type { RemoteMemberSpec, SafeEnsembleLoadOptions } from './ensemble/safeEnsemble.js';
export { resolveOptions, DEFAULT_OPTIONS, OPTION_KEYS, type ResolvedOptions, type Strategy, type BaseEnsembler, type SharpeningMethod, type SharpeningOptions, type UnionScoring, type FamilyPoolMethod, type RejectionRule, type TemperatureAt } from './ensemble/options.js';
export type { EnsembleChunk, FinishReason, PhaseTimes, TraceRecord, TraceCandidate, TraceModelEntry, SamplingStats, TraceAcceptance, TraceDraw } from './ensemble/types.js';
export type { EnsembleInput, ModelPrompt } from './ensemble/prompt.js';
export { AllowedStrings } from './ensemble/constraint.js';
export { TokenTable, TokenTrie } from './ensemble/tokenTable.js';
export type { ToolChoice } from './ensemble/toolChoice.js';
export { JsonSchemaConstraint, type ResponseFormat } from './ensemble/jsonConstraint.js';
export type { RemoteEngine, RemoteMemberStats } from './remote/remoteMember.js';
export type { RemoteConnectionOptions } from './remote/http.js';
export type { VllmScoring } from './remote/vllm.js';
export { uniteDistribution, planUnite, finishUnite, decide, GacUnion, topKeys, type ModelView, type UnionMember, type UnitePlan, type EnsembleDistribution, type EnsembleDecision } from './ensemble/aggregate.js';
export { Vocabulary, EOS_KEY, bytesKey, keyBytes, keyText, isBareSpace } from './ensemble/vocabulary.js';
export { consensusSkip, meanOwnProbability, stableAlignment, type ConsensusInput, type ConsensusRule } from './ensemble/gates.js';
export { toChatMessages } from './langchain/chatModel.js';
export type { SafeEnsembleKnobs, SafeEnsembleFields } from './langchain/common.js';
export { parseToolCalls, toolCallStart, type ParsedToolCall, type ParsedInvalidToolCall, type ParsedOutput } from './langchain/toolCalls.js';
export { packageRoot, DEMO_MODEL_NAMES, ALL_DEMO_MODEL_NAMES } from './demo/models.js';
export { wordProblems, problemSet, extractAnswer, type WordProblem, type ProblemOptions } from './demo/wordProblems.js';
export type { ModelSequence } from './runtime/modelSequence.js';
export type { RemoteSequence } from './remote/remoteSequence.js';
