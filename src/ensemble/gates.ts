/**
 * SAFE's two gates as pure functions: where an ensemble may happen (stability) and where it
 * is needed (consensus).
 * @module
 */
import { isCharBoundary } from '../text/bytes.js';
import type { ResponseTokenization } from '../text/continuation.js';

/** What the consensus gate looks at for one position. */
export interface ConsensusInput {
  /** Each model's probability of its own aligned token (drafter first). */
  ownProbabilities: readonly number[];
  /** For each verifier: is its argmax its own aligned token? */
  verifierArgmaxIsOwn: readonly boolean[];
  /** Normalized weights, same order as `ownProbabilities`. */
  weights: readonly number[];
}

/** Consensus settings. */
export interface ConsensusRule {
  /** Skip when the weighted mean own-token probability exceeds this. */
  threshold: number;
  /** Skip when every verifier's argmax is its aligned token. */
  unanimity: boolean;
}

/** Weighted mean own-token probability. */
export function meanOwnProbability(input: Pick<ConsensusInput, 'ownProbabilities' | 'weights'>): number {
  let mean = 0;
  input.ownProbabilities.forEach((p, i) => (mean += input.weights[i]! * p));
  return mean;
}

/**
 * True when the models agree enough that the drafted token stands without an ensemble:
 * (a) every verifier's top choice is its aligned token, or (b) the weighted mean of the
 * own-token probabilities exceeds the threshold.
 */
export function consensusSkip(input: ConsensusInput, rule: ConsensusRule): boolean {
  if (rule.unanimity && input.verifierArgmaxIsOwn.every(Boolean)) return true;
  return meanOwnProbability(input) > rule.threshold;
}

/**
 * Stability gate: the index of the token that starts at byte `offset` of the candidate
 * response in every verifier's tokenization, or null when the position is not stable (inside
 * a character, or not a token boundary for some verifier). `eos` positions may sit at the end
 * of a verifier's text; others need a token that starts there.
 */
export function stableAlignment(candidate: Uint8Array, offset: number, verifiers: readonly ResponseTokenization[], eos: boolean): number[] | null {
  if (!isCharBoundary(candidate, offset)) return null;
  const out: number[] = [];
  for (const t of verifiers) {
    const k = t.tokenStartingAt(offset);
    if (k < 0 || (!eos && k >= t.ids.length)) return null;
    out.push(k);
  }
  return out;
}
