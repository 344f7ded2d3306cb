// The component under jco (Node.js) as a second runtime: two tenants, each an
// instance with its own WASIShim and directory, run Flink's whole checkpoint
// cycle through the component's exports; escapes are refused with the
// component's own error codes.
//
// Run: `cargo test -p checkpoint-storage-tests --test all jco`, or after
// `cargo build -p checkpoint-storage-host`: `cd tests/node && npm ci && npm test`.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import {
  GUEST_MOUNT,
  bytes,
  encodedReference,
  filesBelow,
  hostPath,
  importObject,
  isInside,
  jobId,
  loadComponent,
  readState,
  startTenant,
  storageConfig,
  storageError,
  tenantDir,
} from './harness.mjs';

const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function newDir(label) {
  const d = tenantDir(label);
  dirs.push(d);
  return d;
}

const SMALL = 100; // below the default 20 KiB threshold: inline handle
const LARGE = 64 * 1024 + 7; // above it: a file

/** Disposes every resource it is given, in reverse order. */
function dispose(...resources) {
  for (const r of resources.reverse()) r?.[Symbol.dispose]();
}

/**
 * Flink's cycle for one checkpoint in one tenant: the coordinator creates the
 * locations, a task writes state, the coordinator writes the metadata.
 * Returns what a restore needs and what must be on disk.
 */
function writeCheckpoint(tenant, job, seed) {
  const { worker, coordinator } = tenant.exports;
  const config = storageConfig(job);

  const coord = coordinator.CoordinatorView.open(config, undefined);
  coord.initializeBaseLocationsForCheckpoint();
  const location = coord.initializeLocationForCheckpoint(1n);
  assert.deepEqual(location.locationReference(), { tag: 'default' });
  const chkDir = location.checkpointDirectory();
  assert.equal(chkDir, `${GUEST_MOUNT}/${job}/chk-1`);
  for (const d of ['shared', 'taskowned', 'chk-1']) {
    assert.ok(statSync(join(tenant.dir, job, d)).isDirectory(), `${d} created in the tenant's directory`);
  }

  const view = worker.WorkerView.open(config);
  const factory = view.resolveCheckpointStorageLocation(1n, { tag: 'default' });
  assert.equal(factory.checkpointDirectory(), chkDir);
  assert.equal(factory.sharedStateDirectory(), `${GUEST_MOUNT}/${job}/shared`);

  const small = bytes(SMALL, seed);
  const out1 = factory.createCheckpointStateOutputStream('exclusive');
  out1.write(small);
  assert.equal(out1.getPos(), BigInt(SMALL));
  const inline = out1.closeAndGetHandle();
  dispose(out1);
  assert.equal(inline.tag, 'byte-stream');
  assert.deepEqual(Buffer.from(inline.val.data), Buffer.from(small), 'inline handle holds the bytes');
  assert.ok(inline.val.name.startsWith(`${chkDir}/`), inline.val.name);
  assert.ok(!existsSync(tenant.host(inline.val.name)), 'an inline handle names no file');

  // Larger than the threshold, written in pieces: a file in the shared directory.
  const large = bytes(LARGE, seed + 1);
  const out2 = factory.createCheckpointStateOutputStream('shared');
  for (let off = 0; off < LARGE; off += 10_000) out2.write(large.subarray(off, off + 10_000));
  const file = out2.closeAndGetHandle();
  dispose(out2);
  assert.equal(file.tag, 'file');
  assert.equal(file.val.size, BigInt(LARGE));
  assert.ok(file.val.path.startsWith(`${GUEST_MOUNT}/${job}/shared/`), file.val.path);
  assert.deepEqual(readFileSync(tenant.host(file.val.path)), Buffer.from(large), 'file on disk holds the bytes');

  // Exclusive state above the threshold: a relative-file handle in chk-1.
  const exclusive = bytes(LARGE, seed + 2);
  const out3 = factory.createCheckpointStateOutputStream('exclusive');
  out3.write(exclusive);
  const relative = out3.closeAndGetHandle();
  dispose(out3);
  assert.equal(relative.tag, 'relative-file');
  assert.equal(relative.val.path, `${chkDir}/${relative.val.relativePath}`);
  assert.deepEqual(readFileSync(tenant.host(relative.val.path)), Buffer.from(exclusive));

  const metadata = new TextEncoder().encode(JSON.stringify({ job, handles: [inline.tag, file.val.path, relative.val.path] }));
  const metaOut = location.createMetadataOutputStream();
  metaOut.write(metadata);
  const completed = metaOut.closeAndFinalizeCheckpoint();
  dispose(metaOut);
  assert.equal(completed.externalPointer, chkDir);
  assert.deepEqual(completed.metadata, {
    tag: 'file',
    val: { path: `${chkDir}/_metadata`, size: BigInt(metadata.length) },
  });
  assert.deepEqual(readFileSync(join(tenant.dir, job, 'chk-1', '_metadata')), Buffer.from(metadata));

  dispose(coord, location, view, factory);
  return {
    completed,
    states: [
      [inline, small],
      [file, large],
      [relative, exclusive],
      [completed.metadata, metadata],
    ],
    files: [file.val.path, relative.val.path, completed.metadata.val.path].map((p) => p.slice(GUEST_MOUNT.length + 1)).sort(),
  };
}

/** Restore from a fresh instance over the same directory: resolve, read back, discard. */
async function restoreCheckpoint(dir, job, written) {
  const tenant = await startTenant(dir);
  const { coordinator, restore } = tenant.exports;
  const coord = coordinator.CoordinatorView.open(storageConfig(job), undefined);
  assert.deepEqual(coord.resolveCheckpoint(written.completed.externalPointer), written.completed);
  assert.deepEqual(coord.resolveCheckpoint(written.completed.metadata.val.path), written.completed, 'pointer to _metadata');
  dispose(coord);

  for (const [handle, expected] of written.states) {
    assert.deepEqual(readState(tenant.exports, handle), Buffer.from(expected), `${handle.tag} reads back exactly`);
  }
  // Seek and size on a file handle.
  const [fileHandle, large] = written.states[1];
  const input = restore.StateInputStream.open(fileHandle);
  assert.equal(input.size(), BigInt(large.length));
  input.seek(1000n);
  assert.deepEqual(Buffer.from(input.read(16n)), Buffer.from(large.subarray(1000, 1016)));
  assert.equal(input.getPos(), 1016n);
  assert.equal(storageError(() => input.seek(BigInt(large.length) + 1n)).code, 'invalid-argument');
  dispose(input);

  const onDisk = tenant.host(fileHandle.val.path);
  assert.ok(existsSync(onDisk));
  restore.discardState(fileHandle);
  assert.ok(!existsSync(onDisk), 'discard-state deleted the file');
  assert.ok(statSync(join(dir, job, 'shared')).isDirectory(), 'its directory stays');
  restore.discardState(fileHandle); // already gone: a no-op
  assert.equal(storageError(() => restore.StateInputStream.open(fileHandle)).code, 'not-found');
  return tenant;
}

test('two tenants under jco, each with its own WASIShim, run the whole checkpoint cycle', async () => {
  const component = await loadComponent();
  assert.ok(component.imports.length > 0);
  const provided = importObject(new WASIShim(), component);
  for (const key of component.imports) {
    assert.match(key, /^wasi:[a-z-]+\/[a-z-]+@0\.2\.\d+$/, 'the component imports only WASI 0.2');
    assert.ok(provided[key] && provided[key.split('@')[0]], `${key} is provided under both key forms`);
  }
  const dirA = newDir('a');
  const dirB = newDir('b');
  // The same job id in both: the guest paths are identical, so only the
  // shims' preopens keep the tenants apart.
  const job = jobId();
  const a = await startTenant(dirA);
  const b = await startTenant(dirB);

  const writtenA = writeCheckpoint(a, job, 1);
  const writtenB = writeCheckpoint(b, job, 100);

  assert.deepEqual(filesBelow(dirA), writtenA.files, "tenant a's files, and only those, are in a's directory");
  assert.deepEqual(filesBelow(dirB), writtenB.files, "tenant b's files, and only those, are in b's directory");
  // State files have random names; only `_metadata` has the same name in both.
  for (const f of writtenA.files.filter((f) => !f.endsWith('/_metadata'))) {
    assert.ok(!writtenB.files.includes(f), `${f} is a's alone`);
  }
  assert.notDeepEqual(readFileSync(join(dirA, job, 'chk-1', '_metadata')), readFileSync(join(dirB, job, 'chk-1', '_metadata')));

  await restoreCheckpoint(dirA, job, writtenA);
  await restoreCheckpoint(dirB, job, writtenB);

  // Discard removed exactly the shared file in each directory.
  const without = (w) => w.files.filter((f) => !f.includes('/shared/'));
  assert.deepEqual(filesBelow(dirA), without(writtenA));
  assert.deepEqual(filesBelow(dirB), without(writtenB));
});

test('escapes are refused with the component error, and nothing outside is touched', async () => {
  const dirA = newDir('a');
  const dirB = newDir('b');
  const job = jobId();
  const a = await startTenant(dirA);
  const b = await startTenant(dirB);
  const config = storageConfig(job);

  // b writes one file; a then tries to reach it.
  const coordB = b.exports.coordinator.CoordinatorView.open(config, undefined);
  coordB.initializeBaseLocationsForCheckpoint();
  const viewB = b.exports.worker.WorkerView.open(config);
  const factoryB = viewB.resolveCheckpointStorageLocation(1n, { tag: 'default' });
  const secret = bytes(30_000, 7);
  const bFile = factoryB.writeState('shared', secret);
  assert.equal(bFile.tag, 'file');
  const bHost = hostPath(dirB, bFile.val.path);
  dispose(coordB, viewB, factoryB);

  // Encoded references outside the tenant's directory.
  const viewA = a.exports.worker.WorkerView.open(config);
  for (const path of ['/checkpoints/../../etc', '/etc', 'file:/etc', bHost, dirB]) {
    const e = storageError(() => viewA.resolveCheckpointStorageLocation(1n, encodedReference(path)));
    assert.equal(e.code, 'invalid-reference', `${path}: ${e.message}`);
    assert.ok(e.message.length > 0);
  }
  // A magic number alone is no reference.
  assert.equal(
    storageError(() => viewA.resolveCheckpointStorageLocation(1n, { tag: 'encoded', val: new Uint8Array([5, 0x5f, 0x3f, 0x18]) })).code,
    'invalid-reference',
  );
  // A checkpoints directory outside is refused when the view opens.
  assert.equal(
    storageError(() => a.exports.worker.WorkerView.open({ ...config, checkpointsDir: '/etc' })).code,
    'invalid-argument',
  );
  dispose(viewA);

  // Restore and discard of files outside a's directory.
  const { restore } = a.exports;
  const fileHandle = (path, size) => ({ tag: 'file', val: { path, size: BigInt(size) } });
  for (const path of ['/etc/passwd', '/checkpoints/../etc/passwd', bHost]) {
    const h = fileHandle(path, 6);
    assert.equal(storageError(() => restore.StateInputStream.open(h)).code, 'invalid-argument', path);
    assert.equal(storageError(() => restore.discardState(h)).code, 'invalid-argument', path);
  }
  // b's handle, as b wrote it, names nothing in a's directory.
  assert.equal(storageError(() => restore.StateInputStream.open(bFile)).code, 'not-found');
  restore.discardState(bFile); // nothing there in a: a no-op
  assert.deepEqual(readFileSync(bHost), Buffer.from(secret), "b's file is untouched");
  assert.deepEqual(readState(b.exports, bFile), Buffer.from(secret));
  assert.deepEqual(filesBelow(dirA), [], 'a wrote nothing');
  assert.ok(isInside(bHost, dirB));
});

test('[Symbol.dispose]() drops at once: a stream disposed unclosed deletes its file, descriptors are closed', async () => {
  const dir = newDir('dispose');
  const job = jobId();
  const tenant = await startTenant(dir);
  const config = storageConfig(job);
  const coord = tenant.exports.coordinator.CoordinatorView.open(config, undefined);
  coord.initializeBaseLocationsForCheckpoint();
  const view = tenant.exports.worker.WorkerView.open(config);
  const factory = view.resolveCheckpointStorageLocation(1n, { tag: 'default' });
  const kept = factory.writeState('shared', bytes(LARGE, 5)); // also starts the shim's I/O worker
  const openFds = () => readdirSync('/proc/self/fd').length;
  const fds = openFds();

  for (let i = 0; i < 20; i++) {
    const out = factory.createCheckpointStateOutputStream('shared');
    out.write(bytes(LARGE, i)); // past the threshold: the stream has a file
    assert.equal(filesBelow(dir).length, 2, 'the stream created its file');
    dispose(out); // dropped without close-and-get-handle: the guest deletes the file
    assert.deepEqual(filesBelow(dir), [kept.val.path.slice(GUEST_MOUNT.length + 1)], 'the dropped stream left no file');
  }
  for (let i = 0; i < 20; i++) {
    const h = factory.writeState('shared', bytes(LARGE, i));
    tenant.exports.restore.discardState(h);
  }
  assert.equal(openFds(), fds, 'every descriptor the guest opened and dropped is closed');
  dispose(coord, view, factory);
});

test('the rest of the contract under jco: savepoints, duplicates, task-owned state, disposal, symlinks, memory backend', async () => {
  const dir = newDir('contract');
  const outside = newDir('outside');
  const job = jobId();
  const tenant = await startTenant(dir);
  const { worker, coordinator, restore } = tenant.exports;
  const config = storageConfig(job);
  mkdirSync(join(dir, 'savepoints'));
  const coord = coordinator.CoordinatorView.open(config, `${GUEST_MOUNT}/savepoints`);
  assert.equal(coord.hasDefaultSavepointLocation(), true);
  coord.initializeBaseLocationsForCheckpoint();
  const view = worker.WorkerView.open(config);

  // A savepoint: its reference is encoded (magic number + path) and resolves to its directory.
  const savepoint = coord.initializeLocationForSavepoint(5n, undefined);
  const reference = savepoint.locationReference();
  assert.equal(reference.tag, 'encoded');
  assert.deepEqual([...reference.val.subarray(0, 4)], [0x05, 0x5f, 0x3f, 0x18]);
  const spDir = new TextDecoder().decode(reference.val.subarray(4));
  assert.equal(spDir, savepoint.checkpointDirectory());
  assert.match(spDir, new RegExp(`^${GUEST_MOUNT}/savepoints/savepoint-${job.slice(0, 6)}-[0-9a-f]{12}$`));
  const spFactory = view.resolveCheckpointStorageLocation(5n, reference);
  const spState = bytes(LARGE, 11);
  const spHandle = spFactory.writeState('exclusive', spState);
  assert.equal(spHandle.tag, 'relative-file');
  assert.deepEqual(readFileSync(tenant.host(spHandle.val.path)), Buffer.from(spState));

  // Duplicates: a hard link into the checkpoint's directory and into task-owned.
  const location = coord.initializeLocationForCheckpoint(2n);
  const factory = view.resolveCheckpointStorageLocation(2n, { tag: 'default' });
  const shared = factory.writeState('shared', bytes(LARGE, 12));
  assert.equal(factory.canFastDuplicate(shared, 'exclusive'), true);
  const [dup] = factory.duplicate([shared], 'exclusive');
  assert.equal(dup.val.path, `${location.checkpointDirectory()}/${shared.val.path.split('/').pop()}`);
  assert.equal(statSync(tenant.host(dup.val.path)).ino, statSync(tenant.host(shared.val.path)).ino, 'a hard link');
  const toolset = view.createTaskOwnedCheckpointStateToolset();
  const [owned] = toolset.duplicate([shared]);
  assert.ok(owned.val.path.startsWith(`${GUEST_MOUNT}/${job}/taskowned/`), owned.val.path);
  const taskStream = view.createTaskOwnedStateStream();
  taskStream.write(bytes(LARGE, 13));
  const taskOwned = taskStream.closeAndGetHandle();
  assert.ok(taskOwned.val.path.startsWith(`${GUEST_MOUNT}/${job}/taskowned/`), taskOwned.val.path);
  assert.equal(storageError(() => factory.duplicate([{ tag: 'byte-stream', val: { name: 'x', data: new Uint8Array(1) } }], 'exclusive')).code, 'invalid-argument');

  // Metadata is written once; a failed checkpoint's directory goes, shared state stays.
  const metaOut = location.createMetadataOutputStream();
  metaOut.write(bytes(10, 1));
  metaOut.closeAndFinalizeCheckpoint();
  assert.equal(storageError(() => location.createMetadataOutputStream()).code, 'already-exists');
  assert.equal(storageError(() => coord.resolveCheckpoint(`${GUEST_MOUNT}/nothing-here`)).code, 'not-found');
  // A completed checkpoint is not a failed one: dispose-on-failure refuses it
  // and deletes nothing; discard-completed-checkpoint removes it.
  assert.equal(storageError(() => location.disposeOnFailure()).code, 'already-exists');
  assert.ok(existsSync(join(dir, job, 'chk-2', '_metadata')), 'the refused dispose deleted nothing');
  coord.discardCompletedCheckpoint(2n);
  assert.ok(!existsSync(join(dir, job, 'chk-2')), 'the checkpoint directory is gone');
  assert.deepEqual(readState(tenant.exports, shared), Buffer.from(bytes(LARGE, 12)), 'shared state stays');

  // Symlinks are never followed out: reading one is refused, discarding removes the link only.
  writeFileSync(join(outside, 'secret'), 'secret');
  symlinkSync(join(outside, 'secret'), join(dir, 'link'));
  const link = { tag: 'file', val: { path: `${GUEST_MOUNT}/link`, size: 6n } };
  assert.equal(storageError(() => restore.StateInputStream.open(link)).code, 'permission-denied');
  restore.discardState(link);
  assert.ok(!existsSync(join(dir, 'link')));
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'secret');
  // A directory symlinked out of the tenant's directory is no way out either.
  symlinkSync(outside, join(dir, 'out'));
  const through = { tag: 'file', val: { path: `${GUEST_MOUNT}/out/secret`, size: 6n } };
  assert.equal(storageError(() => restore.StateInputStream.open(through)).code, 'permission-denied');
  assert.equal(storageError(() => view.resolveCheckpointStorageLocation(1n, encodedReference(`${GUEST_MOUNT}/out`)).writeState('exclusive', bytes(LARGE, 1))).code, 'permission-denied');
  assert.deepEqual(readdirSync(outside), ['secret'], 'nothing was written through the link');

  // The memory backend: inline state, bounded.
  const memory = worker.WorkerView.open({ ...config, backend: 'memory' });
  const memFactory = memory.resolveCheckpointStorageLocation(1n, { tag: 'default' });
  assert.equal(memFactory.writeState('exclusive', bytes(LARGE, 14)).tag, 'byte-stream');
  assert.equal(storageError(() => memFactory.writeState('exclusive', new Uint8Array(5 * 1024 * 1024 + 1))).code, 'state-too-large');

  dispose(coord, view, savepoint, spFactory, location, factory, toolset, taskStream, memory, memFactory);
});
