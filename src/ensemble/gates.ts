/**
 * SAFE's two gates as pure functions: where an ensemble may happen (stability) and where it
 * is needed (consensus).
 * @module
 */

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
