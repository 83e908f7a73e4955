//! The ingest server: HTTP/1.1 on the unix socket and on the loopback TCP port, same routes on both.

mod accept;
mod linger;
mod patience;
pub mod reply;
mod routes;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub use accept::{Acceptor, Answer, Refusal};
pub use patience::client_timeout;
pub use routes::{Listener, Routes};

/// Binds the unix socket, replacing a stale socket file left by a crash, and applies `mode`.
pub async fn bind_unix(path: &Path, mode: u32) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "another process is listening on this socket"));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Accepts connections until `stop`, then lets open requests finish for at most `grace`.
pub async fn serve_unix(listener: UnixListener, routes: Arc<Routes>, stop: CancellationToken, grace: Duration) {
    let accept = || async { listener.accept().await.map(|(stream, _)| stream) };
    serve(accept, Listener::Unix, routes, stop, grace).await
}

pub async fn serve_tcp(listener: TcpListener, routes: Arc<Routes>, stop: CancellationToken, grace: Duration) {
    let accept = || async {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    };
    serve(accept, Listener::Tcp, routes, stop, grace).await
}

async fn serve<S, F, Fut>(accept: F, kind: Listener, routes: Arc<Routes>, stop: CancellationToken, grace: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<S>>,
{
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = accept() => match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(listener = ?kind, %error, "Cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let client_timeout = routes.client_timeout;
        let routes = Arc::clone(&routes);
        let service = service_fn(move |request| Arc::clone(&routes).handle(kind, request));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(client_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(listener = ?kind, %error, "Connection ended with an error.");
            }
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        warn!(listener = ?kind, "Connections still open after the grace period were closed.");
    }
}
