//! Rust bindings generated from `wit/` (the only place wasmtime's
//! `bindgen!` runs).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "checkpoint-storage",
    additional_derives: [PartialEq, Eq],
});
