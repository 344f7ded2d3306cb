// What the component costs under jco, printed, never asserted (timings
// depend on the machine). Each kind runs in a fresh process (bench.mjs says
// why), which checks every byte it writes. See docs/other-runtimes.md.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadComponent } from './harness.mjs';

const bench = fileURLToPath(new URL('./bench.mjs', import.meta.url));

for (const kind of ['writes', 'calls', 'start', 'start-patched']) {
  test(`timings under jco: ${kind} (printed)`, async (t) => {
    // Transpiled once here; `start` transpiles again, to time it.
    const { outDir } = await loadComponent();
    const env = { ...process.env, JCO_DEBUG: '', CHECKPOINT_STORAGE_JCO_OUT: outDir };
    if (kind === 'start') delete env.CHECKPOINT_STORAGE_JCO_OUT;
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', bench, kind], {
      env,
      maxBuffer: 1 << 20,
    });
    const report = JSON.parse(stdout);
    for (const line of report.lines) t.diagnostic(line);
    assert.equal(report.kind, kind);
    assert.ok(Object.keys(report.figures).length > 0);
    for (const [name, value] of Object.entries(report.figures)) {
      assert.ok(Number.isFinite(value) && (value > 0 || name === 'rss_per_tenant_kib'), `${name} = ${value}`);
    }
  });
}
