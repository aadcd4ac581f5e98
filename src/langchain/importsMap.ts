/**
 * What `load()` from `@langchain/core/load` needs to revive serialized instances: LangChain
 * looks classes outside its own packages up in `optionalImportsMap`, by their namespace.
 * @module
 */
import { SafeEnsembleChatModel } from './chatModel.js';
import { SafeEnsembleLLM } from './llm.js';

/**
 * Pass as `optionalImportsMap` to LangChain's `load()` to revive a serialized
 * {@link SafeEnsembleLLM} or {@link SafeEnsembleChatModel} (model sources are kept as they were
 * given, so relative folders resolve against the current directory of the loading process).
 *
 * @example
 * ```ts
 * import { load } from '@langchain/core/load';
 * import { safeEnsembleImportsMap, type SafeEnsembleChatModel } from 'langchain-safe-ensemble';
 * const model = await load<SafeEnsembleChatModel>(JSON.stringify(chat), { optionalImportsMap: safeEnsembleImportsMap });
 * ```
 */
export const safeEnsembleImportsMap = Object.freeze({
  'safe_ensemble/llms': { SafeEnsembleLLM },
  'safe_ensemble/chat_models': { SafeEnsembleChatModel },
});
