//! The S3 server of the tests (crate `s3-loopback`), and a server that
//! never answers.

use std::net::SocketAddr;
use std::sync::Arc;

pub use checkpoint_storage_host::blobstore::S3Settings;
pub use object_store::ObjectStore;
pub use s3_loopback::{ACCESS_KEY, S3Server, SECRET_KEY};

/// A TCP server on 127.0.0.1 that accepts connections and never answers:
/// the slowest possible S3 server. Stops when dropped.
pub struct SilentServer {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                if let Ok((s, _)) = listener.accept() {
                    held.push(s);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        SilentServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
