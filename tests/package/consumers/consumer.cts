// A CommonJS TypeScript consumer (module node16): the package's `require` types must load, and
// its classes must be assignable to @langchain/core's own CommonJS declarations.
import { SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM, type SafeEnsembleChatModelParams } from 'langchain-safe-ensemble';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { LLM } from '@langchain/core/language_models/llms';
import type { Runnable } from '@langchain/core/runnables';

const params: SafeEnsembleChatModelParams = { models: ['./models/a', './models/b'], consensusThreshold: 0.6 };
const chat: BaseChatModel = new SafeEnsembleChatModel(params);
const llm: LLM = new SafeEnsembleLLM({ models: ['./models/a', './models/b'] });
const chain: Runnable = chat.withConfig({ tags: ['cts'] });
const load: typeof SafeEnsemble.load = SafeEnsemble.load;

export = { chat, llm, chain, load };
