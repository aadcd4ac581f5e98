import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main';
import { bundledModels } from '../../src/demo/models';
import { extractAnswer, problemSet } from '../../src/demo/wordProblems';
import { plotSvg } from '../../src/cli/benchPlot';
import { checkStructured, STRUCTURED_FORMATS } from '../../src/cli/benchStructured';
import { sink } from '../helpers/sink';
import { fixtureModel } from '../helpers/fixtures';

const root = join(__dirname, '..', '..');
const run = promisify(execFile);


async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await main(args, out, err);
  return { code, out: out.text(), err: err.text() };
}

describe('the safe-ensemble command', () => {
  beforeAll(() => {
    if (!existsSync(join(root, 'dist', 'cjs', 'cli', 'main.js'))) require('node:child_process').execFileSync(process.execPath, ['tools/build.mjs'], { cwd: root });
  });

  it('answers held-out problems end to end as JSON (the real bin, bundled models)', async () => {
    // Three fixed held-out problems the bundled pair answers correctly with SAFE (greedy, deterministic).
    const fixed = problemSet(20);
    for (const p of [fixed[0]!, fixed[3]!, fixed[14]!]) {
      const { stdout } = await run(process.execPath, [join(root, 'bin', 'safe-ensemble.cjs'), '--json', p.question], { cwd: root });
      const result = JSON.parse(stdout);
      expect(result.finishReason).toBe('eos');
      expect(result.stats).toMatchObject({ strategy: 'safe', generatedTokens: expect.any(Number), ensembleRatePct: expect.any(Number) });
      expect(result.stats.forwardPasses).toHaveLength(2);
      expect(extractAnswer(result.text)).toBe(p.answer);
    }
  });

  it('streams text and prints one line of statistics; --trace explains each ensemble', async () => {
    const p = problemSet(1)[0]!;
    const { code, out, err } = await cli([p.question, '--trace', '--max-new-tokens', '120']);
    expect(code).toBe(0);
    expect(out).toContain('The answer is');
    expect(err).toMatch(/\[safe\] \d+ tokens, \d+ ensembled \(E\/T [\d.]+%\), [\d.]+ tokens\/s, finish: eos/);
    expect(err).toMatch(/^\[loaded\] 2 models \(qwen-adder, mistral-subtractor\) in [\d.]+ s\n/);
  });

  it('takes every knob as a flag', async () => {
    const p = problemSet(1)[0]!;
    const { code, out } = await cli(['generate', '--json', '--strategy', 'every-token', '--union-top-k', '5', '--draft-length', '3', '--consensus-threshold', '0.6', '--no-unanimity-skip', '--no-stability-gate', '--gac-drafter-gate', '0.4', '--sharpening', 'geometric', '--sharpen-below', '0.4', '--sharpen-lambda', '0.2', '--weights', '2,1', '--drafter', '1', p.question]);
    expect(code).toBe(0);
    expect(JSON.parse(out).stats.strategy).toBe('every-token');
  });

  it('answers in JSON valid against --json-schema FILE, or as a JSON object with --json-object; says what is wrong with a bad file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lse-schema-'));
    try {
      const schema = { type: 'object', properties: { answer: { type: 'integer' }, unit: { enum: ['apples', 'marbles'] } }, required: ['answer', 'unit'] };
      writeFileSync(join(dir, 'answer.json'), JSON.stringify(schema));
      const p = problemSet(1)[0]!;
      const { code, out } = await cli(['--json-schema', join(dir, 'answer.json'), '--max-new-tokens', '40', p.question]);
      expect(code).toBe(0);
      const value = JSON.parse(out) as { answer: unknown; unit: unknown };
      expect(Number.isInteger(value.answer) && ['apples', 'marbles'].includes(value.unit as string)).toBe(true);
      const object = await cli(['--json-object', '--max-new-tokens', '30', p.question]);
      expect(typeof JSON.parse(object.out)).toBe('object');
      writeFileSync(join(dir, 'bad.json'), '{"type": ');
      const bad = await cli(['--json-schema', join(dir, 'bad.json'), p.question]);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/--json-schema .*bad\.json: not JSON/);
      const missing = await cli(['--json-schema', join(dir, 'none.json'), p.question]);
      expect(missing.err).toMatch(/cannot read the file \(ENOENT\)/);
      writeFileSync(join(dir, 'pattern.json'), JSON.stringify({ type: 'string', pattern: 'a+' }));
      const unsupported = await cli(['--json-schema', join(dir, 'pattern.json'), p.question]);
      expect(unsupported.code).toBe(2);
      expect(unsupported.err).toMatch(/"pattern" is not supported/);
      expect(unsupported.err).not.toMatch(/\[loaded\]/); // refused before any model loads
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('samples with --temperature, --top-k, --top-p, --seed and --rejection-rule: the same seed, the same output', async () => {
    const p = problemSet(1)[0]!;
    const args = ['generate', '--json', '--temperature', '0.8', '--top-k', '20', '--top-p', '0.95', '--seed', '5', '--rejection-rule', 'ensemble', '--max-new-tokens', '40', p.question];
    const first = await cli(args);
    const second = await cli(args);
    expect(first.code).toBe(0);
    const a = JSON.parse(first.out);
    expect(a.stats.sampling).toMatchObject({ seed: 5 });
    expect(a.stats.sampling.tested).toBeGreaterThan(0);
    expect(JSON.parse(second.out)).toMatchObject({ text: a.text, stats: { sampling: a.stats.sampling, generatedTokens: a.stats.generatedTokens } });
    expect((await cli(['generate', '--temperature=-1', p.question])).err).toMatch(/temperature: must be 0 \(greedy\) or a number from 1e-5 to 100/);
  });

  it('inspects a model folder, and says why one cannot load', async () => {
    const ok = await cli(['inspect', bundledModels()[0]!]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/kv cache\s+4 layers/);
    expect(ok.out).toMatch(/chat template\s+\d+ characters/);
    const bad = await cli(['inspect', '/no/such/model']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/MODEL_NOT_FOUND.*does not exist/);
  });

  it('inspect tells the truth: an EOS id the tokenizer lacks is shown, not a crash; inputs added at load are not listed as the file\'s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lse-inspect-'));
    try {
      // A generated model whose file has no logits_to_keep (the library adds one at load).
      cpSync(fixtureModel({ tokenizer: 'llama2', seed: 5 }), dir, { recursive: true });
      const path = join(dir, 'generation_config.json');
      const generation = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
      writeFileSync(path, JSON.stringify({ ...generation, eos_token_id: [2, 32000] }));
      const r = await cli(['inspect', '--json', dir]);
      expect(r.code).toBe(0);
      const report = JSON.parse(r.out) as { inputs: string[]; addedAtLoad: string[]; tokenizer: { eos: string[] } };
      expect(report.tokenizer.eos).toContain('id 32000 (not in the tokenizer: never produced)');
      expect(report.inputs).not.toContain('logits_to_keep');
      expect(report.addedAtLoad.join(' ')).toMatch(/logits_to_keep input/);
      expect((await cli(['inspect', dir])).out).toMatch(/added at load\s+logits_to_keep input/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has --help everywhere and exits 2 on bad flags', async () => {
    for (const args of [['--help'], ['generate', '--help'], ['inspect', '--help'], ['bench', '--help']]) {
      const r = await cli(args);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/Usage: safe-ensemble/);
    }
    expect((await cli([])).code).toBe(2);
    const bogus = await cli(['--bogus', 'x']);
    expect(bogus.code).toBe(2);
    expect(bogus.err).toMatch(/Unknown option '--bogus'/);
    expect((await cli(['x', '--top-k', 'many'])).err).toMatch(/--top-k needs a decimal number, got "many"/);
    for (const value of ['0x10', '', ' ', '1e400', 'Infinity']) {
      const bad = await cli(['x', '--top-k', value]);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/--top-k needs a decimal number/);
    }
    expect((await cli(['x', '--threads', '1.5'])).err).toMatch(/--threads needs a positive integer, got "1.5"/);
    expect((await cli(['x', '--max-new-tokens', ''])).err).toMatch(/--max-new-tokens needs a decimal number, got ""/);
    expect((await cli(['x', '--consensus-threshold', '3'])).code).toBe(2);
    expect((await cli(['bench', '--problems', '0'])).code).toBe(2);
  });

  const ROW = { models: ['qwen-adder', 'mistral-subtractor'], speedInterval: [0.8, 1.1] as [number, number], cpuSpeedVsDrafter: 1, cpuSpeedInterval: [0.8, 1.1] as [number, number], startsWithSpace: 0, namesNotInPrompt: 0, flagged: false, problems: 10 };

  it('benchmarks in rotated order with wall and CPU ratios and the self-check, in one process or one per method', async () => {
    for (const isolation of ['gc', 'process']) {
      const { stdout } = await run('node', ['bin/safe-ensemble.cjs', 'bench', '--problems', '2', '--methods', 'safe,every-token', '--max-new-tokens', '24', '--isolation', isolation, '--blocks', '2', '--json'], { cwd: root });
      const report = JSON.parse(stdout) as { isolation: string; order: string; selfCheck: string; machine: { cpus: number }; rows: Array<Record<string, unknown>> };
      expect(report).toMatchObject({ isolation, order: 'williams', machine: { cpus: expect.any(Number) } });
      expect(['passed', 'flagged']).toContain(report.selfCheck);
      // Two drafters × (drafter alone, every-token, SAFE); the drafter alone is each reference.
      expect(report.rows.map((r) => [r.drafter, r.method])).toEqual(
        ['qwen-adder', 'mistral-subtractor'].flatMap((d) => [[d, 'single model'], [d, 'SAFE + UniTE (heuristic λ 0.1)'], [d, 'every-token UniTE']]),
      );
      for (const r of report.rows) {
        expect(r).toMatchObject({ problems: 2, speedInterval: [expect.any(Number), expect.any(Number)], cpuSpeedInterval: [expect.any(Number), expect.any(Number)], startsWithSpace: expect.any(Number), namesNotInPrompt: expect.any(Number), flagged: expect.any(Boolean) });
        if (r.method === 'single model') expect([r.speedVsDrafter, r.cpuSpeedVsDrafter, r.flagged]).toEqual([1, 1, false]);
      }
      // Structured output: the drafter alone and SAFE (every-token is not asked), each format, every output valid.
      const structured = (report as unknown as { structured: Array<Record<string, unknown>> }).structured;
      expect(structured.map((r) => [r.drafter, r.method, r.format])).toEqual(
        ['qwen-adder', 'mistral-subtractor'].flatMap((d) =>
          ['single model', 'SAFE + UniTE (heuristic λ 0.1)'].flatMap((m) => STRUCTURED_FORMATS.map((f) => [d, m, f.label])),
        ),
      );
      for (const r of structured) expect(r).toMatchObject({ problems: 2, valid: 2 });
      // The free-text column is the same method's accuracy on the same problems.
      for (const r of structured) {
        const free = report.rows.find((x) => x.drafter === r.drafter && x.method === r.method)!;
        expect(r.freeTextCorrect).toBe(free.correct);
      }
    }
  }, 240_000);

  it('benchmarks sampling: --temperature with --seeds N runs every problem with N seeds, in one process or one per method', async () => {
    for (const isolation of ['gc', 'process']) {
      const { stdout } = await run('node', ['bin/safe-ensemble.cjs', 'bench', '--temperature', '0.7', '--seeds', '2', '--problems', '2', '--methods', 'safe,safe-ensemble-rule', '--max-new-tokens', '16', '--isolation', isolation, '--blocks', '1', '--structured-problems', '0', '--json'], { cwd: root });
      const report = JSON.parse(stdout) as { sampling: Record<string, number>; rows: Array<Record<string, unknown>>; structured: unknown[] };
      expect(report.structured).toEqual([]);
      expect(report.sampling).toEqual({ temperature: 0.7, topP: 1, topK: 0, seeds: 2 });
      expect(report.rows.map((r) => r.method)).toEqual(['single model', 'SAFE + UniTE (heuristic λ 0.1)', "SAFE + UniTE, paper's rejection rule", 'single model', 'SAFE + UniTE (heuristic λ 0.1)', "SAFE + UniTE, paper's rejection rule"]);
      // 2 problems × 2 seeds: four generations per method and drafter.
      for (const r of report.rows) expect(r.problems).toBe(4);
    }
    expect((await cli(['bench', '--seeds', '2'])).err).toMatch(/--seeds, --top-p and --top-k need --temperature above 0/);
  }, 240_000);

  it('checks structured answers by hand: exact keys, JSON types, a finite answer', () => {
    const [answerOnly, withReasoning] = STRUCTURED_FORMATS;
    expect(checkStructured('{"answer": 12}', answerOnly!)).toEqual({ valid: true, answer: 12 });
    expect(checkStructured('{"answer": "12"}', answerOnly!).valid).toBe(false);
    expect(checkStructured('{"answer": 12, "x": 1}', answerOnly!).valid).toBe(false);
    expect(checkStructured('{"answer": 1', answerOnly!).valid).toBe(false);
    expect(checkStructured('[12]', answerOnly!).valid).toBe(false);
    expect(checkStructured('{"reasoning": "3 + 4 = 7", "answer": 7}', withReasoning!)).toEqual({ valid: true, answer: 7 });
    expect(checkStructured('{"answer": 7}', withReasoning!).valid).toBe(false);
  });

  it('refuses bench flags it cannot honour', async () => {
    expect((await cli(['bench', '--structured-problems=1.5'])).err).toMatch(/--structured-problems needs an integer >= 0, got "1.5"/);
    expect((await cli(['bench', '--methods', 'safe,bogus'])).err).toMatch(/--methods: unknown method "bogus"/);
    expect((await cli(['bench', '--isolation', 'threads'])).err).toMatch(/--isolation: use gc or process/);
    const [a, b] = bundledModels();
    expect((await cli(['bench', '--pairs', '--model', a!, '--model', b!])).err).toMatch(/--pairs needs three or more models/);
  });

  it('draws the benchmark plot as SVG', () => {
    const svg = plotSvg([
      { ...ROW, method: 'single model', drafter: 'qwen-adder', accuracy: 0.5, etPct: 0, tokensPerSecond: 100, speedVsDrafter: 1, correct: 5 },
      { ...ROW, method: 'SAFE + UniTE (heuristic λ 0.1)', drafter: 'mistral-subtractor', accuracy: 0.9, etPct: 2, tokensPerSecond: 90, speedVsDrafter: 0.9, correct: 9 },
    ]);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('SAFE + UniTE');
  });

  it('exits quietly when its output pipe closes early (| head -c 5)', async () => {
    const { stdout, stderr } = await run('bash', ['-c', 'node bin/safe-ensemble.cjs "Mia has 37 marbles. She finds 25 more. How many marbles does she have now?" --max-new-tokens 40 | head -c 5; echo " exit=${PIPESTATUS[0]}"'], { cwd: root });
    expect(stdout).toMatch(/^.{1,5} exit=0\n$/s);
    expect(stderr).not.toMatch(/EPIPE|Error|at /);
  });

  it('finds the bundled models relative to the package from an ES module, whatever the current folder', async () => {
    const esm = `import { bundledModels } from ${JSON.stringify(join(root, 'dist', 'esm', 'index.js'))}; console.log(JSON.stringify(bundledModels()));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', esm], { cwd: '/' });
    expect(JSON.parse(stdout)).toEqual(bundledModels());
    const cjs = `console.log(JSON.stringify(require(${JSON.stringify(join(root, 'dist', 'cjs', 'index.js'))}).bundledModels()))`;
    expect(JSON.parse((await run(process.execPath, ['-e', cjs], { cwd: '/' })).stdout)).toEqual(bundledModels());
  });

  it('refuses a model folder with another model\'s tokenizer (generate and inspect exit 1 with the cause)', async () => {
    const [qwen, mistral] = bundledModels();
    const dir = mkdtempSync(join(tmpdir(), 'lse-mismatch-'));
    try {
      cpSync(qwen!, dir, { recursive: true });
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) cpSync(join(mistral!, f), join(dir, f));
      const inspected = await cli(['inspect', dir]);
      expect(inspected.code).toBe(1);
      expect(inspected.err).toMatch(/UNSUPPORTED_GRAPH.*logits have 151669 columns but the tokenizer has only 32000 ids.*belong to another model/);
      const generated = await cli(['Mia has 3 apples. How many?', '--model', dir, '--model', mistral!]);
      expect(generated.code).toBe(1);
      expect(generated.out).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
