// Timings of the component under jco, one kind per process:
//
//   node --expose-gc bench.mjs writes|calls|start|start-patched
//
// With CHECKPOINT_STORAGE_JCO_OUT naming jco's output (see harness.mjs) the
// component is not transpiled again; `start` is run without it, to time that.
//
// Prints one JSON object: `lines` for people, `figures` (numbers) for
// programs. Run by timings.test.mjs, each kind in a fresh process: inside a
// node:test test body every call into the component measured about three
// times as much (likely the runner's async context tracking meeting the
// three Promises jco's generated code creates per call), and earlier
// instances in the same process slow the later ones. Checks the bytes it writes, so every figure
// is of work that really happened; exits non-zero on any mismatch.

import assert from 'node:assert/strict';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GUEST_MOUNT, bytes, jobId, loadComponent, startTenant, storageConfig, tenantDir } from './harness.mjs';

const dirs = [];
process.on('exit', () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function newDir(label) {
  const d = tenantDir(label);
  dirs.push(d);
  return d;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const fmt = (x, digits = 1) => x.toFixed(digits);
const lines = [];
const figures = {};

/** A tenant with its job's directories created and a worker view's factory for checkpoint 1. */
async function tenantWithFactory(config = {}) {
  const dir = newDir('bench');
  const tenant = await startTenant(dir);
  const base = storageConfig(jobId());
  const coord = tenant.exports.coordinator.CoordinatorView.open(base, undefined);
  coord.initializeBaseLocationsForCheckpoint();
  coord.initializeLocationForCheckpoint(1n)[Symbol.dispose]();
  coord[Symbol.dispose]();
  const factoryWith = (extra) => {
    const view = tenant.exports.worker.WorkerView.open({ ...base, ...config, ...extra });
    const factory = view.resolveCheckpointStorageLocation(1n, { tag: 'default' });
    view[Symbol.dispose]();
    return factory;
  };
  return { tenant, dir, job: base.jobId, factoryWith };
}

/** Microseconds per call of a trivial export (`get-pos`), after a warm-up. */
function callCostUs(factory) {
  const CALLS = 100_000;
  const out = factory.createCheckpointStateOutputStream('exclusive');
  for (let i = 0; i < 50_000; i++) out.getPos(); // warm up the JIT
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) out.getPos();
  const us = ((performance.now() - t0) * 1000) / CALLS;
  out[Symbol.dispose]();
  return us;
}

/** 1024 writes of 4 KiB (a 4 MiB stream), several ways, against plain Node fs. */
async function writes() {
  const CHUNK = 4096;
  const CHUNKS = 1024;
  const ROUNDS = 3;
  const chunk = bytes(CHUNK, 3);
  const whole = new Uint8Array(CHUNK * CHUNKS);
  for (let i = 0; i < CHUNKS; i++) whole.set(chunk, i * CHUNK);
  const { tenant, dir, job, factoryWith } = await tenantWithFactory();

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
  // What the guest does, in plain Node: a new file, positional writes, fdatasync.
  const native = () => {
    const name = `native-${crypto.randomUUID()}`;
    const fd = openSync(join(dir, job, 'shared', name), 'wx');
    for (let i = 0; i < CHUNKS; i++) writeSync(fd, chunk, 0, CHUNK, i * CHUNK);
    fdatasyncSync(fd);
    closeSync(fd);
    return { tag: 'file', val: { path: `${GUEST_MOUNT}/${job}/shared/${name}`, size: BigInt(whole.length) } };
  };
  const defaults = factoryWith({});
  const bigBuffer = factoryWith({ writeBufferSize: 1 << 20 });
  const ways = [
    ['native', 'plain Node fs: 4 KiB writeSync calls + fdatasync (baseline)', native],
    ['default', 'jco, a write call per 4 KiB, default write-buffer-size (buffer = threshold, 20 KiB)', stream(defaults)],
    ['buffer1MiB', 'jco, a write call per 4 KiB, write-buffer-size 1 MiB', stream(bigBuffer)],
    ['writeState', 'jco, one write-state call of the whole 4 MiB', () => defaults.writeState('shared', whole)],
  ];
  const times = new Map(ways.map(([key]) => [key, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, so every way sees the same disk.
    for (const [key, , run] of ways) {
      const t0 = performance.now();
      const handle = run();
      times.get(key).push(performance.now() - t0);
      check(handle);
    }
  }
  const baseline = median(times.get('native'));
  lines.push(`${CHUNKS} x 4 KiB (4 MiB) per stream, from creation to handle (fsync included), median of ${ROUNDS}:`);
  for (const [key, label] of ways) {
    const ms = median(times.get(key));
    const mibs = whole.length / 1048576 / (ms / 1000);
    figures[`${key}_ms`] = ms;
    figures[`${key}_mib_s`] = mibs;
    lines.push(`  ${label}: ${fmt(ms)} ms, ${fmt(mibs, 0)} MiB/s, ${fmt(ms / baseline, 2)}x the baseline's time`);
  }
  defaults[Symbol.dispose]();
  bigBuffer[Symbol.dispose]();
}

/** A trivial call, and 100-byte states as a stream and with write-state. */
async function calls() {
  const { factoryWith } = await tenantWithFactory();
  const factory = factoryWith({});
  const callUs = callCostUs(factory);
  const STATES = 3000;
  const state = bytes(100, 9);
  const perSecond = (fn) => {
    for (let i = 0; i < 1000; i++) fn(); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < STATES; i++) fn();
    return STATES / ((performance.now() - t0) / 1000);
  };
  const asStream = perSecond(() => {
    const s = factory.createCheckpointStateOutputStream('exclusive');
    s.write(state);
    const h = s.closeAndGetHandle();
    s[Symbol.dispose]();
    assert.equal(h.tag, 'byte-stream');
  });
  const withWriteState = perSecond(() => assert.equal(factory.writeState('exclusive', state).tag, 'byte-stream'));
  Object.assign(figures, { call_us: callUs, stream_states_per_s: asStream, write_state_states_per_s: withWriteState });
  lines.push(`one call (get-pos), warm: ${fmt(callUs, 2)} us`);
  lines.push(
    `100 B inline states: ${fmt(asStream / 1000, 1)}k/s as a stream (create, write, close, dispose), ` +
      `${fmt(withWriteState / 1000, 1)}k/s with write-state`,
  );
}

/** Starts `count` tenants (each its own directory, WASIShim and instance) and opens a worker view in each. */
async function start(count, label) {
  const component = await loadComponent();
  if (component.transpiled) {
    const { transpileMs, writeAndImportMs, compileMs } = component.timings;
    Object.assign(figures, { transpile_ms: transpileMs, import_ms: writeAndImportMs, compile_ms: compileMs });
    lines.push(
      `once per process: jco transpile ${fmt(transpileMs)} ms, write + import the JS ${fmt(writeAndImportMs)} ms, ` +
        `compile the core modules ${fmt(compileMs)} ms (component ${(component.wasmBytes / 1024).toFixed(0)} KiB)`,
    );
  }
  const job = jobId();
  const starts = [];
  const opens = [];
  const live = [];
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < count; i++) {
    const dir = newDir('start');
    const t0 = performance.now();
    const tenant = await startTenant(dir);
    const t1 = performance.now();
    const view = tenant.exports.worker.WorkerView.open(storageConfig(job));
    const t2 = performance.now();
    starts.push((t1 - t0) * 1000);
    opens.push((t2 - t1) * 1000);
    live.push(view);
  }
  global.gc?.();
  const rssKiB = (process.memoryUsage().rss - rss0) / count / 1024;
  Object.assign(figures, {
    start_median_us: median(starts),
    start_p99_us: percentile(starts, 0.99),
    first_call_median_us: median(opens),
    rss_per_tenant_kib: rssKiB,
  });
  lines.push(
    `tenant start ${label}, ${count} tenants (new WASIShim + instantiate, core modules compiled once): ` +
      `median ${fmt(median(starts))} us, p99 ${fmt(percentile(starts, 0.99))} us; first call (open worker view) ` +
      `median ${fmt(median(opens))} us; RSS growth per live tenant ${fmt(rssKiB, 0)} KiB`,
  );
  return live;
}

const kind = process.argv[2];
switch (kind) {
  case 'writes':
    await writes();
    break;
  case 'calls':
    await calls();
    break;
  case 'start':
    await start(30, 'as generated');
    break;
  case 'start-patched': {
    const TENANTS = 200;
    // The generated instantiate probes JSPI eight times with
    // `try { WebAssembly.promising(f) } catch { f }`. Without JSPI (Node 20)
    // each probe throws a TypeError whose message V8 builds by re-parsing the
    // enclosing ~15,000-line function. An identity `WebAssembly.promising`
    // gives exactly what the catch falls back to.
    if (typeof WebAssembly.promising === 'function') {
      lines.push('this Node has WebAssembly.promising (JSPI): nothing to patch');
      await start(TENANTS, 'as generated (JSPI present)');
    } else {
      WebAssembly.promising = (f) => f;
      await start(TENANTS, 'with WebAssembly.promising = (f) => f');
    }
    // The same trivial call as in `calls`, in a process that now holds many used instances.
    const { factoryWith } = await tenantWithFactory();
    const us = callCostUs(factoryWith({}));
    figures.call_after_many_instances_us = us;
    lines.push(`one call (get-pos), warm, with ${TENANTS} other used instances in the process: ${fmt(us, 2)} us`);
    break;
  }
  default:
    throw new Error(`unknown kind ${kind}: writes, calls, start or start-patched`);
}
console.log(JSON.stringify({ kind, node: process.version, lines, figures }));
