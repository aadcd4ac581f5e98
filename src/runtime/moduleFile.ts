/**
 * The path of this package's build file, for resolving files relative to the package in both
 * module formats. The ESM build replaces this module with one that reads `import.meta.url`
 * (tools/build.mjs), since `__filename` does not exist there.
 * @module
 */
export const moduleFile: string = typeof __filename === 'string' ? __filename : '';
