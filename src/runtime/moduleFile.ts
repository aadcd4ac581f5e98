/**
 * The path of this package's build file, for resolving files relative to the package in both
 * module formats. The ESM build replaces this module with one that reads `import.meta.url`
 * (tools/build.mjs), since `__filename` does not exist there; the TypeScript sources run as ES
 * modules (tsx) read it from the stack, which names this file.
 * @module
 */
import { fileURLToPath } from 'node:url';

function fromStack(): string {
  const frame = /((?:file:\/\/)?(?:[A-Za-z]:)?[/\\][^\s()]*?moduleFile\.[cm]?[jt]s)/.exec(new Error().stack ?? '')?.[1];
  if (!frame) return '';
  return frame.startsWith('file:') ? fileURLToPath(frame) : frame;
}

export const moduleFile: string = typeof __filename === 'string' ? __filename : fromStack();
