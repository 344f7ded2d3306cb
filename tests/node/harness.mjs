// Shared by the jco tests: transpiles the component once per process and
// starts tenants, each a separate instance with its own WASIShim whose only
// preopen is the tenant's directory, mounted at /checkpoints.

import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { transpile } from '@bytecodealliance/jco';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';

export const GUEST_MOUNT = '/checkpoints';
/** Flink's magic number of an encoded location reference. */
export const REFERENCE_MAGIC = [0x05, 0x5f, 0x3f, 0x18];

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The component under test: `CHECKPOINT_STORAGE_COMPONENT` (set by the Rust
 * test `tests/tests/all/jco.rs`), else where `cargo build` puts it.
 */
export function componentPath() {
  const path =
    process.env.CHECKPOINT_STORAGE_COMPONENT ??
    resolve(here, '../../target/guest-build/wasm32-wasip2/guest/checkpoint_storage_guest.wasm');
  if (!existsSync(path)) {
    throw new Error(
      `component not found at ${path}: build it with \`cargo build -p checkpoint-storage-host\` ` +
        'or set CHECKPOINT_STORAGE_COMPONENT to the .wasm',
    );
  }
  return path;
}

let loaded;

/**
 * Transpiles the component with jco (`--instantiation async`), writes the
 * output to a fresh temporary directory, imports it and compiles its core
 * modules once. Every tenant reuses the compiled modules.
 *
 * With `CHECKPOINT_STORAGE_JCO_OUT` set to such a directory (a parent
 * process's `outDir`), that output is used instead of transpiling again.
 */
export function loadComponent() {
  loaded ??= (async () => {
    const wasm = readFileSync(componentPath());
    const t0 = performance.now();
    let outDir = process.env.CHECKPOINT_STORAGE_JCO_OUT;
    let files;
    if (outDir) {
      files = Object.fromEntries(
        readdirSync(outDir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath ?? e.path, e.name))
          .map((path) => [path.slice(outDir.length + 1), readFileSync(path)]),
      );
    } else {
      ({ files } = await transpile(wasm, { name: 'component', instantiation: 'async', quiet: true }));
    }
    const t1 = performance.now();
    if (!process.env.CHECKPOINT_STORAGE_JCO_OUT) {
      outDir = mkdtempSync(join(tmpdir(), 'checkpoint-storage-jco-'));
      process.on('exit', () => rmSync(outDir, { recursive: true, force: true }));
      for (const [name, bytes] of Object.entries(files)) {
        mkdirSync(dirname(join(outDir, name)), { recursive: true });
        writeFileSync(join(outDir, name), bytes);
      }
    }
    const { instantiate } = await import(pathToFileURL(join(outDir, 'component.js')).href);
    const t2 = performance.now();
    const modules = new Map();
    for (const name of Object.keys(files).filter((f) => f.endsWith('.wasm'))) {
      modules.set(name, await WebAssembly.compile(files[name]));
    }
    const t3 = performance.now();
    // The generated JS reads unversioned keys (`imports['wasi:filesystem/types']`);
    // its TypeScript declares versioned ones (`'wasi:filesystem/types@0.2.12'`).
    // Pass both, so either form of the generated code finds its imports.
    // The component's imports, as the declared `ImportObject` keys.
    const dts = new TextDecoder().decode(files['component.d.ts']);
    const importBlock = dts.match(/export interface ImportObject \{([^}]*)\}/)?.[1] ?? '';
    const imports = [...importBlock.matchAll(/'([^']+)':/g)].map((m) => m[1]);
    const versions = new Set(imports.filter((k) => k.includes('@')).map((k) => k.split('@')[1]));
    return {
      instantiate,
      getCoreModule: (name) => modules.get(name),
      imports,
      versions: [...versions],
      outDir,
      wasmBytes: wasm.length,
      transpiled: !process.env.CHECKPOINT_STORAGE_JCO_OUT,
      timings: { transpileMs: t1 - t0, writeAndImportMs: t2 - t1, compileMs: t3 - t2 },
    };
  })();
  return loaded;
}

/** The import object of one WASIShim, under both key forms. */
export function importObject(shim, component) {
  const obj = { ...shim.getImportObject() };
  for (const asVersion of component.versions) {
    Object.assign(obj, shim.getImportObject({ asVersion }));
  }
  return obj;
}

/**
 * A tenant: one instance of the component whose only directory is `dir`,
 * mounted at /checkpoints. No environment, no arguments, no network.
 */
export async function startTenant(dir) {
  const component = await loadComponent();
  const shim = new WASIShim({
    sandbox: { preopens: { [GUEST_MOUNT]: dir }, env: {}, args: ['checkpoint-storage'], enableNetwork: false },
  });
  const exports = await component.instantiate(component.getCoreModule, importObject(shim, component));
  return { dir, exports, host: (guestPath) => hostPath(dir, guestPath) };
}

/** The host path of a guest path below /checkpoints in `dir`. */
export function hostPath(dir, guestPath) {
  if (guestPath !== GUEST_MOUNT && !guestPath.startsWith(GUEST_MOUNT + '/')) {
    throw new Error(`${guestPath} is not below ${GUEST_MOUNT}`);
  }
  return join(dir, guestPath.slice(GUEST_MOUNT.length));
}

/** A fresh temporary tenant directory. */
export function tenantDir(label) {
  return mkdtempSync(join(tmpdir(), `checkpoint-storage-${label}-`));
}

/** Every regular file below `dir`, as paths relative to it, sorted. */
export function filesBelow(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1))
    .sort();
}

/** Whether `path` is `dir` or below it. */
export function isInside(path, dir) {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/** `len` deterministic bytes, different per seed. */
export function bytes(len, seed) {
  const out = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A random job id in Flink's format: 32 lowercase hex characters. */
export function jobId() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * A `storage-config` for `job` on the filesystem backend below /checkpoints,
 * with Flink's defaults for the sizes (the record takes them as plain
 * numbers, see wit/types.wit), and `overrides` on top.
 */
export function storageConfig(job, overrides = {}) {
  return {
    jobId: job,
    checkpointsDir: GUEST_MOUNT,
    backend: 'filesystem',
    fileStateThreshold: 20480,
    writeBufferSize: 4096,
    maxMemoryStateSize: 5242880,
    ...overrides,
  };
}

/** An encoded location reference: the magic number and the UTF-8 path. */
export function encodedReference(path) {
  return { tag: 'encoded', val: new Uint8Array([...REFERENCE_MAGIC, ...new TextEncoder().encode(path)]) };
}

/** Every byte of a state handle, read through the component's restore interface. */
export function readState(exports, handle) {
  const input = exports.restore.StateInputStream.open(handle);
  try {
    const chunks = [];
    for (;;) {
      const chunk = input.read(64n * 1024n);
      if (chunk.length === 0) break;
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  } finally {
    input[Symbol.dispose]();
  }
}

/** Calls `fn`, which must throw the component's error; returns its payload. */
export function storageError(fn) {
  let payload;
  try {
    const value = fn();
    value?.[Symbol.dispose]?.();
  } catch (e) {
    // jco turns an `err` result into a thrown ComponentError carrying the
    // storage-error record; anything else (a trap, a JS error) is a failure.
    if (e?.constructor?.name !== 'ComponentError') throw e;
    payload = e.payload;
  }
  if (payload === undefined) throw new Error('expected the component to refuse, but the call succeeded');
  return payload;
}
