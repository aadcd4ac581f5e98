/**
 * The load-time rewrites run on a model's skeleton (weights left in the file as external-data
 * references to their own bytes): the skeleton is a few kilobytes, the rewritten graph is the
 * one a rewrite of the whole file gives, and the session it loads computes the same logits.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/index';
import { readSkeleton } from '../../src/runtime/modelSkeleton';
import { rewritten } from '../../src/runtime/openSession';
import { fields } from '../../src/runtime/protobufWire';
import { fixtureModel } from '../helpers/fixtures';

/** The graph's fields other than initializers (nodes, inputs, outputs, value infos), as bytes. */
function structure(model: Uint8Array): string[] {
  const graph = fields(model).find((f) => f.field === 7)!;
  return fields(model, graph.payloadStart, graph.end)
    .filter((f) => f.field !== 5)
    .map((f) => Buffer.from(model.subarray(f.start, f.end)).toString('base64'));
}

describe('model skeletons', () => {
  const dir = fixtureModel({ tokenizer: 'llama2', seed: 61, hiddenSize: 64 });
  const file = join(dir, 'onnx', 'model.onnx');

  it('hold the whole structure and none of the weights', () => {
    const original = readFileSync(file);
    const skeleton = readSkeleton(file, '.weights');
    expect(skeleton.moved).toBeGreaterThan(5);
    expect(skeleton.bytes.length).toBeLessThan(original.length / 50);
    expect(structure(skeleton.bytes)).toEqual(structure(original));
  });

  it('the rewrites give the same graph on the skeleton as on the whole file', () => {
    const wanted = { cache: true, logits: true, scores: true };
    const whole = rewritten(readFileSync(file), wanted)!;
    const light = rewritten(readSkeleton(file, '.weights').bytes, wanted)!;
    expect(structure(light.model)).toEqual(structure(whole.model));
    expect(light.names).toEqual(whole.names);
    expect(light.scores).toEqual(whole.scores);
    expect(light.logitsToKeepAdded).toBe(true);
  });

  it('load: the same logits as the graph as exported, and no temporary folder left', async () => {
    const own = mkdtempSync(join(tmpdir(), 'lse-skeleton-tmp-'));
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = own;
    try {
      const plain = await loadModel(dir, { execution: 'inline', logitsToKeep: false, inGraphTopK: false, incrementalCache: false });
      const light = await loadModel(dir, { execution: 'inline' });
      expect(readdirSync(own)).toEqual([]);
      expect(light.info.incrementalCache && light.info.inGraphTopK && light.info.logitsToKeepAdded).toBe(true);
      const ids = plain.tokenizer.encode('Mia has 37 marbles. She finds 25 more. How many now?');
      expect((await light.forward(ids, { logits: 'all' })).data).toEqual((await plain.forward(ids, { logits: 'all' })).data);
      await plain.dispose();
      await light.dispose();
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
      rmSync(own, { recursive: true, force: true });
    }
  });
});
