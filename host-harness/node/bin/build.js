#!/usr/bin/env node
// Transpiles the engine component to JS + core wasm with jco, into
// generated/engine/ (gitignored). The component is the file named by the
// first argument, else $SCIM_ENGINE_WASM, else the path that
// `cargo run -q -p scim-engine-build` prints from the repository root.
// Skips the work when generated/ already holds this component (same
// SHA-256), so the launcher can run it on every start.
//
// Uses jco's `--instantiation sync` output: the host passes its import
// implementations as an object instead of jco wiring them to modules, and
// can instantiate a fresh instance synchronously after a trap.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const out = join(here, 'generated');
const stamp = join(out, 'component.sha256');

function componentPath() {
  const given = process.argv[2] || process.env.SCIM_ENGINE_WASM;
  if (given) return resolve(given);
  const repo = resolve(here, '../..');
  let printed;
  try {
    printed = execFileSync('cargo', ['run', '-q', '-p', 'scim-engine-build'], {
      cwd: repo,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  } catch (e) {
    console.error(`build: \`cargo run -q -p scim-engine-build\` failed (${e.message.split('\n')[0]});`
      + ' set SCIM_ENGINE_WASM to the engine component instead');
    process.exit(1);
  }
  const lines = printed.trim().split('\n');
  return resolve(repo, lines[lines.length - 1].trim());
}

const wasm = componentPath();
const sha = createHash('sha256').update(readFileSync(wasm)).digest('hex');
// The stamp names the output mode too, so a change of mode rebuilds.
const want = `${sha} instantiation=sync`;
if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want) {
  process.exit(0);
}
const tmp = join(out, `engine.tmp-${process.pid}`);
rmSync(tmp, { recursive: true, force: true });
const jco = join(here, 'node_modules/@bytecodealliance/jco/dist/jco.js');
execFileSync(process.execPath, [jco, 'transpile', wasm, '-o', tmp, '--name', 'engine',
  '--instantiation', 'sync', '--no-typescript', '--quiet'], { stdio: ['ignore', 'inherit', 'inherit'] });
rmSync(join(out, 'engine'), { recursive: true, force: true });
renameSync(tmp, join(out, 'engine'));
writeFileSync(stamp, `${want}\n`);
console.error(`build: transpiled ${wasm} (sha256 ${sha.slice(0, 12)}) into generated/engine`);
