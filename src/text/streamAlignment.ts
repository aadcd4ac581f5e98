/**
 * Where each byte of a token stream (the tokens' bytes, concatenated) lands in the text it
 * encodes, for tokenizers that do not reproduce their input byte for byte: dummy-prefix spaces,
 * Unicode normalization, sentencepiece's literal U+2581.
 * @module
 */
import { bytesEqual, concatBytes, utf8 } from './bytes.js';
import type { NormalForm, TokenizerKind } from './tokenizerTypes.js';

/**
 * Maps byte positions in a token stream (the concatenated token bytes) to positions in the
 * text it encodes (monotone), accounting for dummy-prefix spaces and normalization.
 */
export function streamAlignment(tokenizer: { kind: TokenizerKind; normalForm: NormalForm | null }, text: string, input: Uint8Array, stream: Uint8Array): { map: (x: number) => number; exactUpTo: number } {
  // A dummy prefix space in front of the whole text.
  if (stream.length === input.length + 1 && stream[0] === 0x20 && bytesEqual(stream.subarray(1), input)) {
    return { map: (x: number) => Math.max(0, x - 1), exactUpTo: input.length };
  }
  if (tokenizer.normalForm) {
    const form = tokenizer.normalForm;
    const normBounds: number[] = [0];
    const origBounds: number[] = [0];
    const unchanged: boolean[] = [];
    const parts: Uint8Array[] = [];
    // A cluster is a base character plus its combining marks (and Hangul vowel/final jamo),
    // the unit inside which Unicode normalization may reorder or compose.
    for (const m of text.matchAll(/[^\p{M}\u1160-\u11FF](?:[\p{M}\u1160-\u11FF])*|[\p{M}\u1160-\u11FF]+/gsu)) {
      const normalized = utf8(m[0].normalize(form));
      parts.push(normalized);
      unchanged.push(m[0].normalize(form) === m[0]);
      normBounds.push(normBounds[normBounds.length - 1]! + normalized.length);
      origBounds.push(origBounds[origBounds.length - 1]! + utf8(m[0]).length);
    }
    const normalized = concatBytes(parts);
    // The stream may also carry one dummy-prefix space in front.
    const strip = bytesEqual(normalized, stream) ? 0 : stream[0] === 0x20 && bytesEqual(normalized, stream.subarray(1)) ? 1 : -1;
    if (strip >= 0) {
      const map = (x: number) => {
        const y = Math.max(0, x - strip);
        // Binary search the first cluster boundary >= y.
        let lo = 0;
        let hi = normBounds.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (normBounds[mid]! < y) lo = mid + 1;
          else hi = mid;
        }
        // Inside a cluster that normalization left alone, positions map one to one.
        if (lo > 0 && normBounds[lo] !== y && unchanged[lo - 1]) return origBounds[lo - 1]! + (y - normBounds[lo - 1]!);
        return origBounds[lo]!;
      };
      return { map, exactUpTo: input.length };
    }
  }
  // Sentencepiece spells spaces as U+2581, so a literal U+2581 in the text comes back as a
  // space: walk both, matching each such character (3 bytes) to one space byte.
  if (tokenizer.kind === 'sentencepiece') {
    const exactMap = alignMetaspace(input, stream);
    if (exactMap) return { map: (x: number) => exactMap[Math.max(0, Math.min(x, stream.length))]!, exactUpTo: input.length };
  }
  // Fallback for other lossy tokenizations: exact on the common prefix, coarse after it.
  let p = 0;
  while (p < input.length && p < stream.length && input[p] === stream[p]) p++;
  let q = 0;
  while (q < input.length - p && q < stream.length - p && input[input.length - 1 - q] === stream[stream.length - 1 - q]) q++;
  while (p > 0 && (input[p]! & 0xc0) === 0x80) p--;
  return { map: (x: number) => (x <= p ? x : x >= stream.length - q ? input.length - (stream.length - x) : p), exactUpTo: p };
}

/**
 * Position map from a sentencepiece token stream to the text it encodes, where the text's
 * literal U+2581 characters (E2 96 81) appear as spaces in the stream and the stream may start
 * with one dummy-prefix space. Null when the two differ in any other way.
 */
function alignMetaspace(input: Uint8Array, stream: Uint8Array): Int32Array | null {
  let literal = 0;
  for (let i = 0; i + 2 < input.length; i++) if (input[i] === 0xe2 && input[i + 1] === 0x96 && input[i + 2] === 0x81) literal++;
  if (literal === 0) return null;
  const dummy = stream.length - (input.length - 2 * literal);
  if (dummy !== 0 && dummy !== 1) return null;
  if (dummy === 1 && stream[0] !== 0x20) return null;
  const map = new Int32Array(stream.length + 1);
  let i = 0;
  let j = dummy;
  while (j < stream.length) {
    map[j] = i;
    if (i < input.length && input[i] === stream[j]) {
      i++;
      j++;
    } else if (stream[j] === 0x20 && input[i] === 0xe2 && input[i + 1] === 0x96 && input[i + 2] === 0x81) {
      i += 3;
      j++;
    } else return null;
  }
  if (i !== input.length) return null;
  map[stream.length] = input.length;
  return map;
}
