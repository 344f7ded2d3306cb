//! WIT `types`: conversions between the WIT records and the core's types.

use super::exports::flink::checkpoint_storage::types as wit;
use super::{path_in, path_out};
use checkpoint_storage_core::access::StateScope;
use checkpoint_storage_core::config::{Backend, StorageConfig};
use checkpoint_storage_core::error::{ErrorCode, StorageError};
use checkpoint_storage_core::handle::StateHandle;
use checkpoint_storage_core::reference::LocationReference;

pub(crate) type WitResult<T> = Result<T, wit::StorageError>;

pub(crate) fn to_wit_error(e: StorageError) -> wit::StorageError {
    let code = match e.code {
        ErrorCode::InvalidArgument => wit::ErrorCode::InvalidArgument,
        ErrorCode::InvalidReference => wit::ErrorCode::InvalidReference,
        ErrorCode::Unsupported => wit::ErrorCode::Unsupported,
        ErrorCode::NotFound => wit::ErrorCode::NotFound,
        ErrorCode::AlreadyExists => wit::ErrorCode::AlreadyExists,
        ErrorCode::PermissionDenied => wit::ErrorCode::PermissionDenied,
        ErrorCode::Closed => wit::ErrorCode::Closed,
        ErrorCode::StateTooLarge => wit::ErrorCode::StateTooLarge,
        ErrorCode::Io => wit::ErrorCode::Io,
    };
    wit::StorageError {
        code,
        message: e.message,
    }
}

pub(crate) fn scope(s: wit::StateScope) -> StateScope {
    match s {
        wit::StateScope::Exclusive => StateScope::Exclusive,
        wit::StateScope::Shared => StateScope::Shared,
    }
}

pub(crate) fn to_wit_scope(s: StateScope) -> wit::StateScope {
    match s {
        StateScope::Exclusive => wit::StateScope::Exclusive,
        StateScope::Shared => wit::StateScope::Shared,
    }
}

pub(crate) fn from_wit_handle(h: wit::StateHandle) -> StateHandle {
    match h {
        wit::StateHandle::ByteStream(b) => StateHandle::ByteStream {
            name: b.name,
            data: b.data,
        },
        wit::StateHandle::File(f) => StateHandle::File {
            path: path_in(f.path),
            size: f.size,
        },
        wit::StateHandle::RelativeFile(r) => StateHandle::RelativeFile {
            path: path_in(r.path),
            relative_path: r.relative_path,
            size: r.size,
        },
        wit::StateHandle::Segment(g) => StateHandle::Segment {
            path: g.path,
            offset: g.offset,
            size: g.size,
            scope: scope(g.scope),
        },
    }
}

pub(crate) fn to_wit_handle(h: StateHandle) -> wit::StateHandle {
    match h {
        StateHandle::ByteStream { name, data } => wit::StateHandle::ByteStream(wit::ByteStreamHandle {
            name: path_out(name),
            data,
        }),
        StateHandle::File { path, size } => wit::StateHandle::File(wit::FileHandle {
            path: path_out(path),
            size,
        }),
        StateHandle::RelativeFile {
            path,
            relative_path,
            size,
        } => wit::StateHandle::RelativeFile(wit::RelativeFileHandle {
            path: path_out(path),
            relative_path,
            size,
        }),
        StateHandle::Segment {
            path,
            offset,
            size,
            scope,
        } => wit::StateHandle::Segment(wit::SegmentHandle {
            path,
            offset,
            size,
            scope: to_wit_scope(scope),
        }),
    }
}

pub(crate) fn from_wit_reference(reference: wit::LocationReference) -> Result<LocationReference, StorageError> {
    match reference {
        wit::LocationReference::Default => Ok(LocationReference::Default),
        wit::LocationReference::Encoded(bytes) => {
            let reference = LocationReference::from_bytes(bytes)?;
            // A reference that decodes to no path is left for the core to refuse.
            Ok(match reference.decode_path() {
                Ok(path) if path_in(path.to_string()) != path => {
                    LocationReference::encode_path(&path_in(path.to_string()))
                }
                _ => reference,
            })
        }
    }
}

/// Only the coordinator hands references out; the task side only reads them.
#[cfg(not(feature = "task"))]
pub(crate) fn to_wit_reference(reference: &LocationReference) -> wit::LocationReference {
    match reference {
        LocationReference::Default => wit::LocationReference::Default,
        LocationReference::Encoded(bytes) => match reference.decode_path() {
            Ok(path) if path_out(path.to_string()) != path => {
                to_wit_reference(&LocationReference::encode_path(&path_out(path.to_string())))
            }
            _ => wit::LocationReference::Encoded(bytes.clone()),
        },
    }
}

pub(crate) fn from_wit_config(config: wit::StorageConfig) -> StorageConfig {
    StorageConfig {
        job_id: config.job_id,
        checkpoints_dir: config.checkpoints_dir.map(path_in),
        create_subdir: config.create_subdir,
        backend: match config.backend {
            wit::Backend::Filesystem => Backend::Filesystem,
            wit::Backend::Memory => Backend::Memory,
        },
        file_state_threshold: Some(config.file_state_threshold),
        write_buffer_size: Some(config.write_buffer_size),
        max_memory_state_size: Some(config.max_memory_state_size),
        s3_entropy_key: config.s3_entropy_key,
        s3_entropy_length: config.s3_entropy_length,
    }
}

pub(crate) fn to_wit_handles(r: Result<Vec<StateHandle>, StorageError>) -> WitResult<Vec<wit::StateHandle>> {
    r.map(|hs| hs.into_iter().map(to_wit_handle).collect())
        .map_err(to_wit_error)
}
