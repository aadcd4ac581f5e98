#!/usr/bin/env node
// Entry point of the safe-ensemble command: runs the built CommonJS CLI.
const { main } = require('../dist/cjs/cli/main.js');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
