/**
 * The bundled demo models as an agent's model: createAgent + the Calculator tool.
 *
 *   npx tsx examples/agent.ts "Use the calculator: what is 12 * 11?"
 */
import { Calculator } from '@langchain/community/tools/calculator';
import { createAgent } from 'langchain';
import { bundledModels, SafeEnsembleChatModel } from 'langchain-safe-ensemble';

export async function runAgent(question: string): Promise<{ answer: string; toolCalls: number; toolResults: string[] }> {
  const model = new SafeEnsembleChatModel({ models: bundledModels(), maxNewTokens: 96 });
  try {
    const agent = createAgent({ model, tools: [new Calculator()] });
    const { messages } = await agent.invoke({ messages: [{ role: 'user', content: question }] });
    return {
      answer: String(messages[messages.length - 1]!.content),
      toolCalls: messages.reduce((n, m) => n + ((m as { tool_calls?: unknown[] }).tool_calls?.length ?? 0), 0),
      toolResults: messages.filter((m) => m.getType() === 'tool').map((m) => String(m.content)),
    };
  } finally {
    await model.dispose();
  }
}

if (process.argv[1]?.endsWith('agent.ts')) {
  void runAgent(process.argv[2] ?? 'Use the calculator: what is 12 * 11?').then((result) => {
    console.log(result.answer);
    console.log(`(${result.toolCalls} tool call(s); calculator said ${result.toolResults.join(', ')})`);
  });
}
