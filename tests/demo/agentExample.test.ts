import { runAgent } from '../../examples/agent';

describe('examples/agent.ts', () => {
  it('runs the bundled models as an agent that calls the calculator', async () => {
    const result = await runAgent('Use the calculator: what is 12 * 11?');
    expect(result.toolCalls).toBeGreaterThanOrEqual(1);
    expect(result.toolResults).toContain('132');
    expect(result.answer).toContain('132');
  });
});
