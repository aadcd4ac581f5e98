/**
 * The bundled models take a logits_to_keep input: a prompt prefill computes only the rows the
 * runtime asks for, with the same values as the rows of a full run.
 */
import { bundledModels, loadModel } from '../../src/index';

describe.each(bundledModels({ all: true }))('bundled model %s', (dir) => {
  it('computes only the kept logits rows, equal to the same rows of a full run', async () => {
    // Inline, so the test can watch the session's runs on this thread.
    const lm = await loadModel(dir, { execution: 'inline' });
    try {
      expect(lm.info.graph.logitsToKeepInput).toBe('logits_to_keep');
      const session = (lm as unknown as { backend: { session: { run: (f: object) => Promise<Record<string, { dims: number[] }>> } } }).backend.session;
      const run = session.run.bind(session);
      const returnedRows: number[] = [];
      session.run = async (feeds) => {
        const out = await run(feeds);
        returnedRows.push(out.logits!.dims[1]!);
        return out;
      };
      const ids = lm.tokenizer.encode('Mia has 37 marbles. She finds 25 more. How many marbles does she have now?', { addSpecialTokens: true });
      const all = Array.from((await lm.forward(ids, { logits: 'all' })).data);
      lm.reset();
      const kept = await lm.forward(ids, { logits: 2 });
      expect(returnedRows).toEqual([ids.length, 2]);
      expect(Array.from(kept.data)).toEqual(all.slice((ids.length - 2) * kept.vocabSize));
    } finally {
      await lm.dispose();
    }
  });
});
