// An ES module TypeScript consumer (module node16): the package's `import` types must load, and
// its classes must be assignable to @langchain/core's own ES module declarations.
import { SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM, type SafeEnsembleChatModelParams } from 'langchain-safe-ensemble';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { LLM } from '@langchain/core/language_models/llms';
import type { Runnable } from '@langchain/core/runnables';

const params: SafeEnsembleChatModelParams = { models: ['./models/a', './models/b'], consensusThreshold: 0.6 };
export const chat: BaseChatModel = new SafeEnsembleChatModel(params);
export const llm: LLM = new SafeEnsembleLLM({ models: ['./models/a', './models/b'] });
export const chain: Runnable = chat.withConfig({ tags: ['mts'] });
export const load: typeof SafeEnsemble.load = SafeEnsemble.load;
