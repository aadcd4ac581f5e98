/**
 * The seam between the SAFE engine and the models it ensembles: what a member must do, whatever
 * runs it (an onnxruntime session on this thread or in a worker — {@link CausalLM} — or, later, a
 * model served by an inference engine). The engine feeds token ids, reads reduced rows
 * ({@link Scores}: top-k, the logits of asked ids, the normalizer and whole rows on demand) and
 * rolls the sequence back; it never touches a session.
 * @module
 */
import type { ScoreOptions } from '../runtime/causalLM.js';
import type { Scores } from '../runtime/scores.js';
import type { TextTokenizer } from '../text/tokenizer.js';

/** A model as the engine sees it: a tokenizer and a croppable scored sequence. */
export interface EnsembleMember {
  /** A short label for messages and traces. */
  readonly name: string;
  /** The member's tokenizer (local: it renders prompts and maps tokens to bytes). */
  readonly tokenizer: TextTokenizer;
  /** Longest sequence (prompt + generated) the member accepts. */
  readonly maxPositions: number;
  /** Whether its passes run off this thread, so that passes of several members overlap. */
  readonly runsConcurrently: boolean;
  /** The ids of the sequence it holds, oldest first. */
  readonly tokens: readonly number[];
  /** Number of ids it holds. */
  readonly length: number;
  /** Appends `ids` and scores the rows asked for; on error the sequence is as it was. */
  score(ids: readonly number[], options: ScoreOptions): Promise<Scores>;
  /** Rolls the sequence back to its first `length` ids. */
  crop(length: number): void;
}
