//! The component carries its own WIT, docs included. Nothing in the
//! component model's binary format holds docs, and the `package-docs`
//! custom section the toolchain knows documents one package only: at the top
//! of a component it must describe the synthetic `root:component` package a
//! decoder makes (docs of another package there make decoding fail). So
//! `build.rs` appends our WIT package in the binary WIT encoding (the form
//! `wasm-tools component wit --wasm` writes, with its own `package-docs`
//! section inside) as one custom section of this name. Extracted to a file,
//! it prints back as WIT with every `///` doc (`wasm-tools component wit`)
//! and feeds tools that take WIT, such as `jco types`.

/// Name of the component's custom section holding its WIT package.
pub const WIT_PACKAGE_SECTION: &str = "flink:checkpoint-storage/wit";

#[cfg(all(test, feature = "embedded-component"))]
mod tests {
    use super::WIT_PACKAGE_SECTION;
    use crate::EMBEDDED_COMPONENT;
    use wasmparser::{Parser, Payload};

    /// The custom sections directly in `wasm` (not in nested modules or
    /// components), as (name, data).
    fn top_level_custom_sections(wasm: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut sections = vec![];
        // `parse_all` walks into nested modules and components too.
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.expect("a valid component") {
                Payload::CustomSection(s) if depth == 0 => sections.push((s.name().to_string(), s.data().to_vec())),
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        sections
    }

    #[test]
    fn the_component_carries_its_wit_package_with_docs() {
        let sections = top_level_custom_sections(EMBEDDED_COMPONENT);
        let [(_, package)] = &sections
            .iter()
            .filter(|(name, _)| name == WIT_PACKAGE_SECTION)
            .cloned()
            .collect::<Vec<_>>()[..]
        else {
            panic!(
                "one {WIT_PACKAGE_SECTION:?} section expected, found {:?}",
                names(&sections)
            );
        };
        // A top-level package-docs section would have to describe the
        // decoder's `root:component` package; ours would break decoding.
        assert!(
            !sections.iter().any(|(name, _)| name == "package-docs"),
            "no top-level package-docs section"
        );

        // The section is a WIT package in the binary encoding: a component
        // whose own package-docs section (version byte, then JSON) holds
        // the docs of every item.
        let inner = top_level_custom_sections(package);
        let (_, docs) = inner
            .iter()
            .find(|(name, _)| name == "package-docs")
            .unwrap_or_else(|| panic!("no package-docs in the WIT package: {:?}", names(&inner)));
        assert_eq!(docs[0], 1, "package-docs format version");
        let json: serde_json::Value = serde_json::from_slice(&docs[1..]).expect("package-docs is JSON");
        let interfaces = &json["interfaces"];
        for interface in ["types", "worker", "coordinator", "restore"] {
            assert!(
                interfaces[interface].is_object(),
                "docs of interface {interface}: {json}"
            );
        }
        let worker = json["interfaces"]["worker"].to_string();
        assert!(
            worker.contains("Flink's `CheckpointStorageWorkerView`"),
            "the worker interface's doc: {worker}"
        );
        assert!(
            worker.contains(
                "an encoded\\nreference is decoded and all state of the factory goes into the\\ndecoded directory"
            ),
            "the doc of worker-view.resolve-checkpoint-storage-location: {worker}"
        );
    }

    fn names(sections: &[(String, Vec<u8>)]) -> Vec<&str> {
        sections.iter().map(|(name, _)| name.as_str()).collect()
    }
}
