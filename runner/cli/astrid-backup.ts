#!/usr/bin/env node
// npx astrid-backup <command>: the operator's CLI for the admin API
// (runner/cli/astrid/, docs/cli.md). Node 22 runs this TypeScript as is;
// under npx the project's `node` devDependency is first on PATH.
import { main } from "./astrid/main.ts";

const code = await main(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
  tty: Boolean(process.stderr.isTTY),
  drawLine: (text) => process.stderr.write(text ? `\r\x1b[2K${text}` : "\r\x1b[2K"),
});
process.exitCode = code;
