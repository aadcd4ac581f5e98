#!/usr/bin/env node
// Entry point of the safe-ensemble command: runs the built CommonJS CLI.
const { main } = require('../dist/cjs/cli/main.js');
// Output piped into a reader that stops early (`| head`) closes the pipe: stop quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error && error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    process.stderr.write(`safe-ensemble: cannot write output: ${error && error.message}\n`);
    process.exit(1);
  });
}
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
