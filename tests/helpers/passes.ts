import type { EnsembleMember } from '../../src/index';
import type { MemberSequence } from '../../src/research';

type Score = EnsembleMember['score'];

/**
 * Wraps every scoring pass of `member` — on its own sequence and on every sequence opened from
 * it (what a generation uses) — with `wrap`; returns the undo.
 */
export function wrapPasses(member: EnsembleMember, wrap: (score: Score) => Score): () => void {
  const score = member.score;
  const open = member.openSequence;
  member.score = wrap(score.bind(member));
  if (open) {
    member.openSequence = () => {
      const sequence: MemberSequence = open.call(member);
      sequence.score = wrap(sequence.score.bind(sequence));
      return sequence;
    };
  }
  return () => {
    member.score = score;
    if (open) member.openSequence = open;
  };
}
