/**
 * How error messages show a caller's value.
 * @module
 */
/** Most characters of a caller's value an error message shows. */
const MAX_SHOWN = 200;

/** A value as an error message shows it: NaN and Infinity as such, strings quoted, arrays and objects as JSON; at most 200 characters. */
export function describeValue(value: unknown): string {
  return capped(shown(value));
}

function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === undefined) return String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > MAX_SHOWN ? value.slice(0, MAX_SHOWN) : value);
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) ?? String(value);
  } catch {
    return Array.isArray(value) ? `an array of ${value.length}` : 'an object that is not JSON (cyclic or too deep)';
  }
}

function capped(text: string): string {
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}
