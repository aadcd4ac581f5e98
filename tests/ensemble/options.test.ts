import { InvalidArgumentError, type EnsembleOptions } from '../../src/index';
import { DEFAULT_OPTIONS, resolveOptions } from '../../src/research';

describe('ensemble options', () => {
  it("default to the paper's settings, with look-ahead scoring where tokens split differently ('auto') beyond it", () => {
    const o = resolveOptions(2);
    expect(o).toMatchObject({
      strategy: 'safe',
      baseEnsembler: 'unite',
      unionTopK: 10,
      temperature: 0,
      topK: 0,
      topP: 1,
      seed: null,
      rejectionRule: 'residual',
      temperatureAt: 'members',
      unionScoring: 'auto',
      familyPool: 'product',
      draftLength: 5,
      consensusThreshold: 0.5,
      unanimitySkip: true,
      stabilityGate: true,
      gacDrafterGate: 0.5,
      sharpening: { method: 'heuristic', below: 0.5, lambda: 0.1 },
      weights: null,
    });
    expect(DEFAULT_OPTIONS.maxNewTokens).toBe(256);
  });

  it("unionScoring 'auto' (default) is look-ahead when sampling and stays 'auto' (look-ahead where tokens split differently) when greedy; an explicit choice stands", () => {
    expect(resolveOptions(2).unionScoring).toBe('auto');
    expect(resolveOptions(2, { temperature: 0 }, { unionScoring: 'first-token' }).unionScoring).toBe('first-token');
    expect(resolveOptions(2, { temperature: 0.7 }).unionScoring).toBe('look-ahead');
    expect(resolveOptions(2, { temperature: 0.7, unionScoring: 'auto' }).unionScoring).toBe('look-ahead');
    expect(resolveOptions(2, { temperature: 0.7 }, { unionScoring: 'first-token' }).unionScoring).toBe('first-token');
    expect(resolveOptions(2, { unionScoring: 'look-ahead' }).unionScoring).toBe('look-ahead');
    expect(DEFAULT_OPTIONS.unionScoring).toBe('auto');
  });

  it('later layers win and sharpening merges field by field', () => {
    const o = resolveOptions(2, { draftLength: 3, sharpening: { lambda: 0.2 } }, { draftLength: 8, sharpening: { method: 'geometric' } });
    expect(o.draftLength).toBe(8);
    expect(o.sharpening).toEqual({ method: 'geometric', below: 0.5, lambda: 0.2 });
  });

  it('normalizes weights', () => {
    expect(resolveOptions(2, { weights: [1, 3] }).weights).toEqual([0.25, 0.75]);
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['strategy', { strategy: 'greedy' }, /strategy: must be one of 'safe', 'single', 'every-token', 'gac-threshold'/],
    ['baseEnsembler', { baseEnsembler: 'avg' }, /baseEnsembler: must be one of/],
    ['unionTopK', { unionTopK: 0 }, /unionTopK: must be an integer from 1 to 1000, got 0/],
    ['unionTopK', { unionTopK: 2.5 }, /unionTopK: must be an integer/],
    ['temperature', { temperature: -0.1 }, /temperature: must be 0 \(greedy\) or a number from 1e-5 to 100, got -0.1/],
    ['temperature', { temperature: Infinity }, /temperature: must be 0 \(greedy\) or a number from 1e-5 to 100, got Infinity/],
    ['topK', { topK: -1 }, /topK: must be an integer from 0 to 1000000, got -1/],
    ['topK', { topK: 2.5 }, /topK: must be an integer/],
    ['topP', { topP: 0 }, /topP: must be a number above 0 up to 1, got 0/],
    ['topP', { topP: 1.01 }, /topP: must be a number above 0 up to 1, got 1.01/],
    ['seed', { seed: -1 }, /seed: must be an integer from 0 to 9007199254740991, got -1/],
    ['seed', { seed: 1.5 }, /seed: must be an integer/],
    ['rejectionRule', { rejectionRule: 'paper' }, /rejectionRule: must be one of 'residual', 'ensemble', got "paper"/],
    ['temperatureAt', { temperatureAt: 'after' }, /temperatureAt: must be one of 'members', 'ensemble', got "after"/],
    ['unionScoring', { unionScoring: 'whole' }, /unionScoring: must be one of 'auto', 'first-token', 'look-ahead', got "whole"/],
    ['familyPool', { familyPool: 'geometric' }, /familyPool: must be one of 'product', 'mean', got "geometric"/],
    ['draftLength', { draftLength: 100 }, /draftLength: must be an integer from 1 to 64/],
    ['consensusThreshold', { consensusThreshold: 1.5 }, /consensusThreshold: must be a number from 0 to 1, got 1.5/],
    ['consensusThreshold', { consensusThreshold: '0.5' }, /consensusThreshold: must be a number from 0 to 1, got "0.5"/],
    ['unanimitySkip', { unanimitySkip: 'yes' }, /unanimitySkip: must be true or false/],
    ['stabilityGate', { stabilityGate: 1 }, /stabilityGate: must be true or false/],
    ['gacDrafterGate', { gacDrafterGate: -0.1 }, /gacDrafterGate: must be a number from 0 to 1/],
    ['sharpening.method', { sharpening: { method: 'max' } }, /sharpening.method: must be one of 'heuristic', 'geometric', 'none'/],
    ['sharpening.below', { sharpening: { below: 2 } }, /sharpening.below: must be a number from 0 to 1/],
    ['sharpening.lambda', { sharpening: { lambda: NaN } }, /sharpening.lambda: must be a number from 0 to 1/],
    ['weights', { weights: [1] }, /weights: must be 2 positive numbers/],
    ['weights', { weights: [1, -1] }, /weights: must be 2 positive numbers/],
    ['maxNewTokens', { maxNewTokens: 0 }, /maxNewTokens: must be an integer from 1/],
    ['stop', { stop: 'END' }, /stop: must be an array of non-empty strings/],
    ['stop', { stop: [''] }, /stop: must be an array of non-empty strings/],
    ['signal', { signal: {} }, /signal: must be an AbortSignal/],
    ['trace', { trace: 'on' }, /trace: must be true or false/],
    ['consensusTreshold', { consensusTreshold: 0.4 }, /consensusTreshold: is not a SAFE option/],
  ];
  it.each(bad)('rejects a bad %s with a message naming it', (field, options, message) => {
    let error: unknown;
    try {
      resolveOptions(2, options as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).field).toBe(field);
    expect((error as Error).message).toMatch(message);
  });

  it('a __proto__ key is an unknown option, never a prototype (JSON.parse makes it an own key)', () => {
    const hostile = JSON.parse('{"__proto__": {"maxNewTokens": 3, "bogusKnob": 1}}') as EnsembleOptions;
    expect(() => resolveOptions(2, hostile)).toThrow(/__proto__: is not a SAFE option/);
    expect(() => resolveOptions(2, JSON.parse('{"sharpening": {"__proto__": {"below": 0.9}}}') as EnsembleOptions)).toThrow(/sharpening.__proto__/);
    expect(resolveOptions(2, JSON.parse('{"maxNewTokens": 7}') as EnsembleOptions).maxNewTokens).toBe(7);
  });

  it('tool definitions that are cyclic, too deep or not JSON are typed errors (field tools), never a RangeError', () => {
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 5000; i++) deep = { type: 'object', properties: { x: deep } };
    const cyclic: Record<string, unknown> = { type: 'object', properties: {} };
    (cyclic.properties as Record<string, unknown>).self = cyclic;
    const tool = (parameters: unknown) => [{ type: 'function', function: { name: 'f', description: 'd', parameters } }];
    for (const [tools, message] of [
      [tool(deep), /nests more than 64 levels/],
      [tool(cyclic), /refers back to an enclosing object/],
      [tool({ type: 'object', default: () => 1 }), /is a function/],
      ['not an array', /must be an array of tool definitions/],
    ] as const) {
      let error: unknown;
      try {
        resolveOptions(2, { tools: tools as unknown[] });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).field).toBe('tools');
      expect((error as Error).message).toMatch(message);
    }
    expect(resolveOptions(2, { tools: tool({ type: 'object', properties: { a: { type: 'number' } } }) }).tools).toHaveLength(1);
  });
});
