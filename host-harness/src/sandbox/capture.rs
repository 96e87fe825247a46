//! A mapping plugin's stdout and stderr: every write succeeds at once and
//! the first bytes are kept for a failure's detail, so neither a chatty
//! plugin nor one that prints megabytes can block the host or grow it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes a writer may hand over in one `write` (what `check-write` grants).
const PERMIT: usize = 64 << 10;

/// One output of a plugin: shared by every stream the plugin opens on it.
#[derive(Clone)]
pub struct Capture {
    keep: usize,
    inner: Arc<Mutex<Captured>>,
}

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    total: u64,
}

impl Capture {
    /// A capture that keeps the first `keep` bytes written.
    pub fn new(keep: usize) -> Capture {
        Capture {
            keep,
            inner: Arc::default(),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.total += bytes.len() as u64;
        let room = self.keep.saturating_sub(c.kept.len());
        c.kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// What was kept, as text, and how many bytes were written in all.
    pub fn text(&self) -> (String, u64) {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (String::from_utf8_lossy(&c.kept).trim().to_string(), c.total)
    }

    /// Forgets what was written (a kept instance starts its next call clean).
    pub fn clear(&self) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.kept.clear();
        c.total = 0;
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_them_all() {
        let c = Capture::new(4);
        let mut s = c.p2_stream();
        s.write(Bytes::from_static(b"abc")).unwrap();
        s.write(Bytes::from(vec![b'x'; 1 << 20])).unwrap();
        assert_eq!(c.text(), ("abcx".to_string(), 3 + (1 << 20)));
        c.clear();
        assert_eq!(c.text(), (String::new(), 0));
    }
}
