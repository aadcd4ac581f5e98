/**
 * Byte-level helpers: every boundary in this library is a UTF-8 byte offset, never a
 * position in a decoded JavaScript string.
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8 bytes; invalid sequences become U+FFFD. */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** True when `offset` does not fall inside a multi-byte UTF-8 character of `bytes`. */
export function isCharBoundary(bytes: Uint8Array, offset: number): boolean {
  if (offset <= 0 || offset >= bytes.length) return offset === 0 || offset === bytes.length;
  return (bytes[offset]! & 0xc0) !== 0x80;
}

/**
 * Length of the longest prefix of `bytes` that ends on a complete UTF-8 character
 * (used to stream text without ever emitting half a character).
 */
export function completeUtf8Prefix(bytes: Uint8Array, end = bytes.length): number {
  let i = end;
  // Walk back over at most 3 continuation bytes to the lead byte of the last character.
  let back = 0;
  while (i > 0 && back < 4 && (bytes[i - 1]! & 0xc0) === 0x80) {
    i--;
    back++;
  }
  if (i === 0) return back === 0 ? end : 0;
  const lead = bytes[i - 1]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return need === back + 1 ? end : i - 1;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * GPT-2 style byte-level alphabet: the printable character standing for each byte in
 * byte-level BPE vocabularies (`Ġ` for a space, `Ċ` for a newline...). Returns the inverse map.
 */
export function byteLevelDecoderTable(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = bytes.slice();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + extra++);
    }
  }
  const table = new Map<string, number>();
  bytes.forEach((b, i) => table.set(String.fromCharCode(chars[i]!), b));
  return table;
}
