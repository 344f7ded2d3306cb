//! A real S3 server: `s3s-fs` (an S3 protocol implementation over a
//! directory) served in-process on 127.0.0.1, on a free port, with its own
//! runtime. It starts with its owner (a test, `demo --s3-loopback`, the
//! bench) and stops when dropped (or [`S3Server::stop`]): no install step,
//! no docker, nothing off loopback.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use checkpoint_storage_host::blobstore::S3Settings;
pub use object_store::ObjectStore;

/// Credentials of the test server.
pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key";

/// A running S3 server over a temporary directory.
pub struct S3Server {
    addr: SocketAddr,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3Server {
    /// Starts a server with one bucket per name in `buckets`.
    pub fn start(buckets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        for b in buckets {
            // s3s-fs keeps a bucket as a directory of its root.
            std::fs::create_dir(root.join(b)).expect("bucket dir");
        }
        let mut server = Self::serve(&root);
        server._dir = Some(dir);
        server
    }

    /// Serves the same data again (after `stop`), on a new port.
    pub fn restart(&self) -> Self {
        Self::serve(&self.root)
    }

    fn serve(root: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over the root");
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        S3Server {
            addr,
            root: root.to_path_buf(),
            _dir: None,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the server keeps its objects (`<root>/<bucket>/<key>`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Settings for `bucket` on this server with the right credentials.
    pub fn settings(&self, bucket: &str) -> S3Settings {
        S3Settings {
            bucket: bucket.to_string(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".to_string()),
            access_key_id: Some(ACCESS_KEY.to_string()),
            secret_access_key: Some(SECRET_KEY.to_string()),
            allow_http: true,
        }
    }

    /// An object store client for `bucket`.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.settings(bucket).build().expect("S3 client")
    }

    /// Stops serving: open connections are closed, new ones refused.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Every object key of `bucket` stored on disk, complete objects only
    /// (s3s-fs keeps uploads in progress elsewhere), relative and sorted.
    pub fn object_keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        files_below(&self.root.join(bucket), "", &mut keys);
        keys.retain(|k| !k.contains(".s3s-fs") && !k.starts_with('.'));
        keys.sort();
        keys
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Relative paths of the files below `dir` (symbolic links not followed).
fn files_below(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        match entry.file_type() {
            Ok(t) if t.is_dir() => files_below(&entry.path(), &format!("{name}/"), out),
            Ok(t) if t.is_file() => out.push(name),
            _ => {}
        }
    }
}
