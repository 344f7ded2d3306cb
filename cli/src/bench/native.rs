//! The baseline: the guest's stream policy in plain native Rust, so the
//! benchmark measures what the sandbox costs and nothing else.
//!
//! Same policy as `guest/src/output_stream.rs`: a buffer of the effective
//! size, a file with a random UUID name created exclusively when it
//! overflows, positional writes, `sync_data` at close, an inline handle when
//! the total is at most the threshold and no file was created.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a finished native stream returns (mirrors `StateHandle`).
#[derive(Debug)]
pub enum NativeHandle {
    Inline { name: String, data: Vec<u8> },
    File { path: PathBuf, size: u64 },
}

struct OpenFile {
    file: File,
    path: PathBuf,
    len: u64,
}

/// A native state stream writing into `dir`.
pub struct NativeStream<'a> {
    dir: &'a Path,
    threshold: usize,
    buffer_size: usize,
    buf: Vec<u8>,
    file: Option<OpenFile>,
}

impl<'a> NativeStream<'a> {
    pub fn new(dir: &'a Path, threshold: usize, buffer_size: usize) -> Self {
        NativeStream {
            dir,
            threshold,
            buffer_size: buffer_size.max(threshold),
            buf: Vec::new(),
            file: None,
        }
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() <= self.buffer_size {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.buf.reserve(self.buffer_size.saturating_sub(self.buf.len()));
        if data.len() >= self.buffer_size {
            self.flush_to_file()?;
            return self.append(data);
        }
        let room = self.buffer_size - self.buf.len();
        self.buf.extend_from_slice(&data[..room]);
        self.flush_to_file()?;
        self.buf.extend_from_slice(&data[room..]);
        Ok(())
    }

    pub fn close_and_get_handle(mut self) -> io::Result<Option<NativeHandle>> {
        if self.file.is_none() {
            if self.buf.is_empty() {
                return Ok(None);
            }
            if self.buf.len() <= self.threshold {
                let name = self.dir.join(uuid()).to_string_lossy().into_owned();
                let data = std::mem::take(&mut self.buf);
                return Ok(Some(NativeHandle::Inline { name, data }));
            }
        }
        self.flush_to_file()?;
        let f = self.file.take().expect("file exists");
        f.file.sync_data()?;
        Ok(Some(NativeHandle::File {
            path: f.path,
            size: f.len,
        }))
    }

    fn ensure_file(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = self.dir.join(uuid());
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        self.file = Some(OpenFile { file, path, len: 0 });
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let f = self.file.as_mut().expect("file exists");
        f.file.write_all_at(data, f.len)?;
        f.len += data.len() as u64;
        Ok(())
    }

    fn flush_to_file(&mut self) -> io::Result<()> {
        self.ensure_file()?;
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let result = self.append(&buf);
            self.buf = buf;
            self.buf.clear();
            result?;
        }
        Ok(())
    }
}

/// Discards like the guest: a stream dropped without a handle leaves no file.
impl Drop for NativeStream<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            drop(f.file);
            let _ = std::fs::remove_file(&f.path);
        }
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_state_is_inline_and_large_state_is_a_synced_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = NativeStream::new(dir.path(), 100, 4096);
        s.write(&[1; 60]).unwrap();
        s.write(&[2; 40]).unwrap();
        match s.close_and_get_handle().unwrap() {
            Some(NativeHandle::Inline { data, .. }) => assert_eq!(data.len(), 100),
            other => panic!("expected inline, got {other:?}"),
        }
        let mut s = NativeStream::new(dir.path(), 100, 4096);
        for _ in 0..5 {
            s.write(&[3; 1000]).unwrap();
        }
        match s.close_and_get_handle().unwrap() {
            Some(NativeHandle::File { path, size }) => {
                assert_eq!(size, 5000);
                assert_eq!(std::fs::read(path).unwrap(), vec![3; 5000]);
            }
            other => panic!("expected a file, got {other:?}"),
        }
    }

    #[test]
    fn dropping_an_unfinished_stream_deletes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = NativeStream::new(dir.path(), 10, 10);
        s.write(&[0; 100]).unwrap();
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
