//! What the component asks of any host (`docs/host-contract.md`): the
//! imports it needs, and a clear error from every call that needs the
//! tenant's directory when the host preopened none (not a misleading
//! "outside the tenant's directory"), the instance staying usable.

use crate::{ByteStreamHandle, Error, ErrorCode, Plugin, StateHandle, StorageConfig, TenantConfig};

const JOB: &str = "0123456789abcdef0123456789abcdef";

fn expect_no_preopen<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::Storage(e)) => {
            assert_eq!(e.code, ErrorCode::NotFound, "{what}: {}", e.message);
            assert!(
                e.message.contains("no directory was preopened") && e.message.contains("/checkpoints"),
                "{what}: {}",
                e.message
            );
        }
        other => panic!("{what}: expected the no-preopen error, got {other:?}"),
    }
}

#[test]
fn every_entry_point_names_the_missing_preopen() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::load().unwrap();
    let tenant = plugin.tenant_without_preopen(TenantConfig::new(dir.path())).unwrap();
    let config = StorageConfig::filesystem(JOB);
    let inline = StateHandle::ByteStream(ByteStreamHandle {
        name: "/checkpoints/x".into(),
        data: vec![1, 2, 3],
    });
    // Twice each: the empty preopen list is not kept as "the" sandbox, and
    // the error is an answer, not a trap.
    for _ in 0..2 {
        expect_no_preopen(tenant.open_worker_view(&config), "worker view");
        expect_no_preopen(tenant.open_coordinator_view(&config, None), "coordinator view");
        expect_no_preopen(tenant.open_input_stream(&inline), "input stream");
        expect_no_preopen(tenant.discard_state(&inline), "discard");
    }
    assert!(!tenant.is_poisoned());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was written");

    // The same plugin with the preopen works.
    let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
    let view = tenant.open_worker_view(&config).unwrap();
    drop(view);
}

/// The functions the component imports from `wasi:filesystem/types`,
/// exactly: the list in `docs/host-contract.md`. It also guards the stdio
/// stand-ins (`guest/src/no_stdio.rs`): wasi-libc's own file I/O would
/// import `write-via-stream` and friends, whose streams must reach a host.
#[test]
fn the_component_imports_exactly_the_documented_filesystem_functions() {
    use wasmtime::component::types::ComponentItem;
    let plugin = Plugin::load().unwrap();
    let engine = plugin.engine();
    let component_type = plugin.component().component_type();
    let (_, types) = component_type
        .imports(engine)
        .find(|(name, _)| name.starts_with("wasi:filesystem/types@"))
        .expect("wasi:filesystem/types is imported");
    let ComponentItem::ComponentInstance(instance) = types.ty else {
        panic!("wasi:filesystem/types is not an instance")
    };
    let mut functions: Vec<String> = instance
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    functions.sort();
    assert_eq!(
        functions,
        [
            "[method]descriptor.create-directory-at",
            "[method]descriptor.get-flags",
            "[method]descriptor.is-same-object",
            "[method]descriptor.link-at",
            "[method]descriptor.metadata-hash",
            "[method]descriptor.metadata-hash-at",
            "[method]descriptor.open-at",
            "[method]descriptor.read",
            "[method]descriptor.read-directory",
            "[method]descriptor.remove-directory-at",
            "[method]descriptor.stat",
            "[method]descriptor.stat-at",
            "[method]descriptor.sync",
            "[method]descriptor.unlink-file-at",
            "[method]descriptor.write",
            "[method]directory-entry-stream.read-directory-entry",
        ]
    );
}

/// The component's imports, exactly: the contract lists them for hosts
/// other than this library. A change here is a change of the contract.
#[test]
fn the_component_imports_exactly_the_documented_wasi_interfaces() {
    let plugin = Plugin::load().unwrap();
    let mut imports = plugin.import_names();
    imports.sort();
    assert_eq!(
        imports,
        [
            "wasi:clocks/wall-clock@0.2.12",
            "wasi:filesystem/preopens@0.2.12",
            "wasi:filesystem/types@0.2.12",
            "wasi:random/random@0.2.12",
        ]
    );
}

/// The task side is the full component without `coordinator` and
/// `file-merging`: the same imports, and every other export with the same
/// type (so that a tenant's calls mean the same whichever of the two
/// answers them).
#[test]
fn the_task_side_is_the_full_component_without_coordinator_and_file_merging() {
    use crate::plugin::{EMBEDDED_COMPONENT, EMBEDDED_TASK_COMPONENT};
    use wasmtime::component::{Component, types::ComponentItem};
    let engine = wasmtime::Engine::default();
    let full = Component::new(&engine, EMBEDDED_COMPONENT).unwrap().component_type();
    let task = Component::new(&engine, EMBEDDED_TASK_COMPONENT)
        .unwrap()
        .component_type();
    let names = |items: Vec<&str>| items.into_iter().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        names(task.imports(&engine).map(|(name, _)| name).collect()),
        names(full.imports(&engine).map(|(name, _)| name).collect())
    );
    let full_exports: Vec<(&str, ComponentItem)> = full.exports(&engine).map(|(n, e)| (n, e.ty)).collect();
    let task_exports: Vec<(&str, ComponentItem)> = task.exports(&engine).map(|(n, e)| (n, e.ty)).collect();
    let expected: Vec<&str> = full_exports
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            !name.starts_with("flink:checkpoint-storage/coordinator@")
                && !name.starts_with("flink:checkpoint-storage/file-merging@")
        })
        .collect();
    assert_eq!(task_exports.iter().map(|(name, _)| *name).collect::<Vec<_>>(), expected);
    assert_eq!(expected.len() + 2, full_exports.len());
    // Function by function: the same names and parameter and result types.
    let mut compared = 0;
    for (name, task_item) in &task_exports {
        let (_, full_item) = full_exports.iter().find(|(n, _)| n == name).unwrap();
        let (ComponentItem::ComponentInstance(t), ComponentItem::ComponentInstance(f)) = (task_item, full_item) else {
            panic!("{name} is not an instance");
        };
        let signature = |(n, item): (&str, wasmtime::component::types::ComponentExtern<'_>)| match item.ty {
            ComponentItem::ComponentFunc(func) => Some(format!("{n}: {:?} -> {:?}", params(&func), results(&func))),
            _ => None,
        };
        let t: Vec<String> = t.exports(&engine).filter_map(signature).collect();
        let f: Vec<String> = f.exports(&engine).filter_map(signature).collect();
        assert_eq!(t, f, "{name}");
        compared += t.len();
    }
    // worker, restore and direct-io have dozens.
    assert!(compared > 20, "{compared} functions compared");
}

fn params(func: &wasmtime::component::types::ComponentFunc) -> Vec<String> {
    func.params()
        .map(|(name, ty)| format!("{name}: {}", type_name(&ty)))
        .collect()
}

fn results(func: &wasmtime::component::types::ComponentFunc) -> Vec<String> {
    func.results().map(|ty| type_name(&ty)).collect()
}

/// A type's shape in words. Resource types of two components are never
/// equal, so they compare by kind; everything else by its full shape.
fn type_name(ty: &wasmtime::component::types::Type) -> String {
    use wasmtime::component::types::Type;
    match ty {
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::List(l) => format!("list<{}>", type_name(&l.ty())),
        Type::Option(o) => format!("option<{}>", type_name(&o.ty())),
        Type::Result(r) => format!(
            "result<{}, {}>",
            r.ok().map(|t| type_name(&t)).unwrap_or_default(),
            r.err().map(|t| type_name(&t)).unwrap_or_default()
        ),
        Type::Tuple(t) => format!(
            "tuple<{}>",
            t.types().map(|t| type_name(&t)).collect::<Vec<_>>().join(", ")
        ),
        Type::Record(r) => format!(
            "record{{{}}}",
            r.fields()
                .map(|f| format!("{}: {}", f.name, type_name(&f.ty)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Variant(v) => format!(
            "variant{{{}}}",
            v.cases()
                .map(|c| format!("{}({})", c.name, c.ty.map(|t| type_name(&t)).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Enum(e) => format!("enum{{{}}}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags{{{}}}", f.names().collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}
