/**
 * The suite runs in two Jest projects (see jest.config.cjs): members in worker threads, and
 * again inline. A test that picks its execution modes itself, or whose subject is statistics
 * rather than the execution mode, runs the same in both: it runs in the worker project only.
 */
export const inInlineProject = process.env.SAFE_ENSEMBLE_EXECUTION === 'inline';

/** `it` in the worker project, skipped in the inline one (the test does not depend on the default mode). */
export const itOnce: jest.It = inInlineProject ? it.skip : it;
