//! A connector that bounds a subscription's open connections to its `concurrency` (SPEC §7, issue 14
//! #3). hyper-util's pool starts a connect for every checkout that finds no idle connection and lets
//! it run on after the attempt that wanted it has timed out, then keeps the result; against a receiver
//! that accepts and never answers, one subscription at `concurrency = 500` held 12,710 sockets.
//!
//! Here every connection holds one of `concurrency` permits from before its connect starts until the
//! connection is dropped (closed by either side, or evicted from the pool), so connecting, in use and
//! idle connections together never exceed it; a connect waits for a permit instead. It also holds one of
//! the permits all subscriptions share ([`crate::limits::outbound_connections`]), so that deliveries
//! never take the file descriptors the store needs. A connect (TCP and
//! TLS) also gives up after the attempt timeout, so a receiver that stalls handshakes cannot keep the
//! permits after its attempts have ended.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a connector: at most `limit` of its connections exist at once.
#[derive(Clone)]
pub struct CappedConnector<C> {
    inner: C,
    permits: Arc<Semaphore>,
    shared: Arc<Semaphore>,
    connect_timeout: Duration,
}

impl<C> CappedConnector<C> {
    /// At most `limit` connections of this connector, each also holding a permit of `shared`.
    pub fn new(inner: C, limit: usize, shared: Arc<Semaphore>, connect_timeout: Duration) -> Self {
        CappedConnector { inner, permits: Arc::new(Semaphore::new(limit.max(1))), shared, connect_timeout }
    }
}

impl<C> Service<Uri> for CappedConnector<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    type Response = Capped<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The instance polled ready goes into the future (tower's contract); a clone stays for later.
        let mut ready = self.inner.clone();
        std::mem::swap(&mut ready, &mut self.inner);
        let (permits, shared, timeout) = (Arc::clone(&self.permits), Arc::clone(&self.shared), self.connect_timeout);
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let took = humantime::format_duration(timeout);
            let closed = |_| "connection permits closed";
            let waiting = async {
                let permit = permits.acquire_owned().await.map_err(closed)?;
                let shared = shared.acquire_owned().await.map_err(closed)?;
                Ok::<_, BoxError>((permit, shared))
            };
            let Ok(held) = tokio::time::timeout_at(deadline, waiting).await else {
                return Err(format!(
                    "no free outbound connection within {took}: this subscription has `concurrency` connections \
                     open, or all subscriptions together hold a quarter of the open-file limit"
                )
                .into());
            };
            let held = held?;
            match tokio::time::timeout_at(deadline, ready.call(uri)).await {
                Ok(Ok(io)) => Ok(Capped { io, _permits: held }),
                Ok(Err(error)) => Err(error.into()),
                Err(_) => Err(format!("connect timed out after {took}").into()),
            }
        })
    }
}

/// A connection holding its permit until dropped.
pub struct Capped<T> {
    io: T,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl<T: Connection> Connection for Capped<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Capped<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Capped<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
