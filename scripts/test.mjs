// Runs every compiled *.test.js under dist/ with node's built-in test runner, then (with no
// filter) once more with GENLAB_FILL_EMPTY=nan. Node 20 has no glob for --test, and a
// bare directory would also run helper files.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2);
const files = find('dist', []).filter((f) => filter.length === 0 || filter.some((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error('no test files found under dist/ (run tsc first)');
  process.exit(1);
}
const run = (env) => spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit', env });
const r = run(process.env);
if (r.status !== 0 || filter.length > 0) process.exit(r.status ?? 1);
// Once more with every uninitialised result (emptyF32) filled with NaN, so that a kernel
// that leaves part of its output unwritten fails a test instead of passing on whatever
// the reused memory held.
console.log('\n# again with GENLAB_FILL_EMPTY=nan (uninitialised results read as NaN)');
const p = run({ ...process.env, GENLAB_FILL_EMPTY: 'nan' });
process.exit(p.status ?? 1);
