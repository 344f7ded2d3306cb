// What the component costs under jco, printed (never asserted: timings depend
// on the machine). The bytes written are still checked, so every figure is of
// work that really happened. See docs/other-runtimes.md.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GUEST_MOUNT, bytes, jobId, loadComponent, startTenant, tenantDir } from './harness.mjs';

const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function newDir(label) {
  const d = tenantDir(label);
  dirs.push(d);
  return d;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const fmt = (x, digits = 1) => x.toFixed(digits);

/** Starts `count` tenants (each its own directory, WASIShim and instance), opens a worker view in each. */
async function startTenants(count, job) {
  const starts = [];
  const opens = [];
  const live = [];
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < count; i++) {
    const dir = newDir('start');
    const t0 = performance.now();
    const tenant = await startTenant(dir);
    const t1 = performance.now();
    const view = tenant.exports.worker.WorkerView.open({ jobId: job, checkpointsDir: GUEST_MOUNT, backend: 'filesystem' });
    const t2 = performance.now();
    starts.push((t1 - t0) * 1000);
    opens.push((t2 - t1) * 1000);
    live.push(view);
  }
  const rssPerTenantKiB = (process.memoryUsage().rss - rss0) / count / 1024;
  for (const view of live) view[Symbol.dispose]();
  return { starts, opens, rssPerTenantKiB };
}

test('tenant start under jco (printed)', async (t) => {
  const component = await loadComponent();
  const { transpileMs, writeAndImportMs, compileMs } = component.timings;
  t.diagnostic(
    `once per process: jco transpile ${fmt(transpileMs)} ms, write + import the JS ${fmt(writeAndImportMs)} ms, ` +
      `compile the core modules ${fmt(compileMs)} ms (component ${(component.wasmBytes / 1024).toFixed(0)} KiB)`,
  );
  const job = jobId();
  const report = (label, { starts, opens, rssPerTenantKiB }) =>
    t.diagnostic(
      `tenant start ${label}, ${starts.length} tenants (new WASIShim + instantiate, core modules precompiled): ` +
        `median ${fmt(median(starts))} us, p99 ${fmt(percentile(starts, 0.99))} us; ` +
        `then open worker view: median ${fmt(median(opens))} us; RSS growth per live tenant ~${fmt(rssPerTenantKiB, 0)} KiB`,
    );
  report('as generated', await startTenants(30, job));

  // The generated instantiate probes JSPI eight times with
  // `try { WebAssembly.promising(f) } catch { f }`. Without JSPI (Node 20)
  // each probe throws a TypeError whose message V8 builds by re-parsing the
  // enclosing ~15,000-line function: ~3.5 ms each. An identity
  // `WebAssembly.promising` gives exactly the fallback the catch would.
  if (typeof WebAssembly.promising !== 'function') {
    WebAssembly.promising = (f) => f;
    try {
      report('with WebAssembly.promising = (f) => f', await startTenants(200, job));
    } finally {
      delete WebAssembly.promising;
    }
  } else {
    t.diagnostic('this Node has WebAssembly.promising (JSPI): the probe does not throw');
  }
});

test('4 KiB writes under jco against plain Node fs (printed)', async (t) => {
  const CHUNK = 4096;
  const CHUNKS = 1024; // 4 MiB per stream
  const ROUNDS = 3;
  const chunk = bytes(CHUNK, 3);
  const whole = new Uint8Array(CHUNK * CHUNKS);
  for (let i = 0; i < CHUNKS; i++) whole.set(chunk, i * CHUNK);

  const dir = newDir('writes');
  const job = jobId();
  const tenant = await startTenant(dir);
  const { worker, coordinator } = tenant.exports;
  const base = { jobId: job, checkpointsDir: GUEST_MOUNT, backend: 'filesystem' };
  const coord = coordinator.CoordinatorView.open(base, undefined);
  coord.initializeBaseLocationsForCheckpoint();
  coord[Symbol.dispose]();

  const factoryWith = (extra) => {
    const view = worker.WorkerView.open({ ...base, ...extra });
    const f = view.resolveCheckpointStorageLocation(1n, { tag: 'default' });
    view[Symbol.dispose]();
    return f;
  };
  const check = (handle) => {
    assert.equal(handle.tag, 'file');
    assert.equal(handle.val.size, BigInt(whole.length));
    assert.deepEqual(readFileSync(tenant.host(handle.val.path)), Buffer.from(whole));
  };
  const stream = (factory) => () => {
    const out = factory.createCheckpointStateOutputStream('shared');
    for (let i = 0; i < CHUNKS; i++) out.write(chunk);
    const h = out.closeAndGetHandle();
    out[Symbol.dispose]();
    return h;
  };
  const native = () => {
    const path = join(dir, job, 'shared', `native-${crypto.randomUUID()}`);
    const fd = openSync(path, 'wx');
    for (let i = 0; i < CHUNKS; i++) writeSync(fd, chunk, 0, CHUNK, i * CHUNK);
    fdatasyncSync(fd);
    closeSync(fd);
    return { tag: 'file', val: { path: `${GUEST_MOUNT}/${job}/shared/${path.split('/').pop()}`, size: BigInt(whole.length) } };
  };
  const defaults = factoryWith({});
  const bigBuffer = factoryWith({ writeBufferSize: 1 << 20 });
  const ways = [
    ['Node fs, 4 KiB writeSync + fdatasync (baseline)', native],
    ['jco, one write call per 4 KiB, default write-buffer-size (buffer = threshold, 20 KiB)', stream(defaults)],
    ['jco, one write call per 4 KiB, write-buffer-size 1 MiB', stream(bigBuffer)],
    ['jco, one write-state call of 4 MiB', () => defaults.writeState('shared', whole)],
  ];
  const results = new Map(ways.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, so every way sees the same disk.
    for (const [name, run] of ways) {
      const t0 = performance.now();
      const handle = run();
      const ms = performance.now() - t0;
      check(handle);
      results.get(name).push(ms);
    }
  }
  const baseline = median(results.get(ways[0][0]));
  t.diagnostic(`${CHUNKS} x 4 KiB (4 MiB) per stream, median of ${ROUNDS}, fsync included:`);
  for (const [name, times] of results) {
    const ms = median(times);
    t.diagnostic(
      `  ${name}: ${fmt(ms)} ms = ${fmt((whole.length / 1048576) / (ms / 1000), 0)} MiB/s, ` +
        `${fmt((ms * 1000) / CHUNKS, 1)} us per 4 KiB, ${fmt(ms / baseline, 2)}x the baseline time`,
    );
  }
  defaults[Symbol.dispose]();
  bigBuffer[Symbol.dispose]();
});

test('per-call and small-state cost under jco (printed)', async (t) => {
  const dir = newDir('calls');
  const job = jobId();
  const tenant = await startTenant(dir);
  const { worker, coordinator } = tenant.exports;
  const config = { jobId: job, checkpointsDir: GUEST_MOUNT, backend: 'filesystem' };
  const coord = coordinator.CoordinatorView.open(config, undefined);
  coord.initializeBaseLocationsForCheckpoint();
  const location = coord.initializeLocationForCheckpoint(1n);
  const view = worker.WorkerView.open(config);
  const factory = view.resolveCheckpointStorageLocation(1n, { tag: 'default' });

  const CALLS = 100_000;
  const out = factory.createCheckpointStateOutputStream('exclusive');
  for (let i = 0; i < 10_000; i++) out.getPos(); // warm up the JIT
  let t0 = performance.now();
  for (let i = 0; i < CALLS; i++) out.getPos();
  const callUs = ((performance.now() - t0) * 1000) / CALLS;
  out[Symbol.dispose]();

  const STATES = 2000;
  const state = bytes(100, 9);
  for (let i = 0; i < 500; i++) factory.writeState('exclusive', state); // warm-up
  t0 = performance.now();
  for (let i = 0; i < STATES; i++) {
    const s = factory.createCheckpointStateOutputStream('exclusive');
    s.write(state);
    const h = s.closeAndGetHandle();
    s[Symbol.dispose]();
    assert.equal(h.tag, 'byte-stream');
  }
  const streamPerSec = STATES / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let i = 0; i < STATES; i++) {
    const h = factory.writeState('exclusive', state);
    assert.equal(h.tag, 'byte-stream');
  }
  const writeStatePerSec = STATES / ((performance.now() - t0) / 1000);
  t.diagnostic(
    `one call (get-pos): ${fmt(callUs, 2)} us; 100 B inline states: ${fmt(streamPerSec / 1000, 1)}k/s as a stream ` +
      `(create, write, close, dispose), ${fmt(writeStatePerSec / 1000, 1)}k/s with write-state`,
  );
  for (const r of [factory, view, location, coord]) r[Symbol.dispose]();
});
