/**
 * The source tree's shape, drawn from the code itself: layers import only downwards, no file
 * imports itself through others (type-only imports included), files stay small enough to read,
 * and the package root exports a deliberate surface.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const SRC = resolve(__dirname, '..', 'src');

/** Layers from the bottom up: a file may import its own layer and those below it. */
const LAYERS: Record<string, number> = {
  errors: 0,
  describeValue: 0,
  text: 1,
  member: 2,
  runtime: 3,
  remote: 4,
  ensemble: 5,
  demo: 6,
  langchain: 7,
  cli: 8,
  index: 9,
  research: 9,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

const files = sourceFiles(SRC);

/** Every relative import of a file (static, re-exports, dynamic, type-only), as absolute .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  }
  return out;
}

const graph = new Map(files.map((f) => [f, importsOf(f)]));

function layerOf(file: string): number {
  const top = relative(SRC, file).split('/')[0]!.replace(/\.ts$/, '');
  const layer = LAYERS[top];
  if (layer === undefined) throw new Error(`${relative(SRC, file)}: no layer assigned (add its folder to LAYERS)`);
  return layer;
}

describe('source layout', () => {
  it('imports only run down the layers (text → member → runtime → remote → ensemble → langchain → cli)', () => {
    const upward: string[] = [];
    for (const [file, imports] of graph) {
      for (const target of imports) if (layerOf(target) > layerOf(file)) upward.push(`${relative(SRC, file)} → ${relative(SRC, target)}`);
    }
    expect(upward).toEqual([]);
  });

  it('has no import circles, type-only imports included', () => {
    // Tarjan's strongly connected components: any component of more than one file is a circle.
    let index = 0;
    const indices = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    const visit = (v: string) => {
      indices.set(v, index);
      low.set(v, index++);
      stack.push(v);
      onStack.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!graph.has(w)) continue;
        if (!indices.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indices.get(w)!));
      }
      if (low.get(v) === indices.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(relative(SRC, w));
        } while (w !== v);
        if (component.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(component.sort());
      }
    };
    for (const f of files) if (!indices.has(f)) visit(f);
    expect(circles).toEqual([]);
  });

  it('keeps every source file under 400 lines', () => {
    const long = files.map((f) => ({ file: relative(SRC, f), lines: readFileSync(f, 'utf8').split('\n').length })).filter((f) => f.lines > 400);
    expect(long).toEqual([]);
  });

  it('exports a deliberate surface from the package root (at most 35 names), building blocks from /research', () => {
    const program = ts.createProgram([join(SRC, 'index.ts'), join(SRC, 'research.ts')], { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true });
    const checker = program.getTypeChecker();
    const exportsOf = (file: string) => checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)!)!).map((s) => s.name);
    const root = exportsOf(join(SRC, 'index.ts'));
    expect(root.length).toBeLessThanOrEqual(35);
    for (const name of ['SafeEnsembleLLM', 'SafeEnsembleChatModel', 'SafeEnsemble', 'loadModel', 'CausalLM', 'loadRemoteModel', 'RemoteMember', 'bundledModels', 'SafeEnsembleError', 'InferenceError', 'TextConstraint', 'EnsembleMember']) expect(root).toContain(name);
    // Internals stay out of the root; researchers find them behind the subpath.
    for (const name of ['uniteDistribution', 'planUnite', 'GacUnion', 'encodeContinuation', 'stableAlignment', 'consensusSkip', 'Vocabulary', 'parseToolCalls', 'topK']) {
      expect(root).not.toContain(name);
    }
    const research = exportsOf(join(SRC, 'research.ts'));
    for (const name of ['uniteDistribution', 'GacUnion', 'Vocabulary', 'stableAlignment', 'topK', 'Scores', 'TextTokenizer']) expect(research).toContain(name);
  });
});
