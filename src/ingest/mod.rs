//! The ingest server: HTTP/1.1 on the unix socket and on the loopback TCP port, same routes on both.

mod accept;
mod linger;
mod patience;
mod rejection;
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
use tracing::{debug, info, warn};

pub use accept::{Acceptor, Answer, Refusal};
pub use patience::client_timeout;
pub use rejection::Rejection;
pub use routes::{Listener, Routes};

/// The mode of a directory the relay makes for its socket.
const SOCKET_DIR_MODE: u32 = 0o755;

/// Binds the unix socket (making its missing directories `0755`), replacing a stale socket file
/// left by a crash, and applies `mode`. Anything else at the path is left alone and is an error (SPEC §7:
/// the relay never deletes a file it did not create): a regular file there may be the relay's own
/// database.
pub async fn bind_unix(path: &Path, mode: u32) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        let missing: Vec<&Path> =
            dir.ancestors().take_while(|ancestor| !ancestor.as_os_str().is_empty() && !ancestor.exists()).collect();
        std::fs::create_dir_all(dir)?;
        // The relay's umask is 0077 (its store is private); the socket's users must reach the socket
        // through the directories made for it, and `socket_mode` is what controls their access.
        for made in missing {
            std::fs::set_permissions(made, std::fs::Permissions::from_mode(SOCKET_DIR_MODE))?;
        }
    }
    if let Some(kind) = not_a_socket(path) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{kind} is there, not a socket; the relay does not remove it"),
        ));
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "another process is listening on this socket"));
        }
        // A socket nobody listens on: left by a crash.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// What is at `path` when it exists and is not a unix socket ("a regular file", "a directory", ...).
pub fn not_a_socket(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::symlink_metadata(path).ok()?.file_type();
    match () {
        _ if kind.is_socket() => None,
        _ if kind.is_file() => Some("a regular file"),
        _ if kind.is_dir() => Some("a directory"),
        _ if kind.is_symlink() => Some("a symbolic link"),
        _ => Some("a file"),
    }
}

/// Open connections per listener at most: past it, the listener stops accepting until one closes. Anyone
/// on the machine may connect to the TCP port (the token is checked per request), so without a cap idle
/// connections could use up the relay's file descriptors and lock the clinic app and the admin commands
/// out of the unix socket, which has its own room ([`crate::limits`] budgets the descriptors).
fn max_connections() -> usize {
    crate::limits::listener_connections()
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
    let room = Arc::new(tokio::sync::Semaphore::new(max_connections()));
    let mut failing = false;
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&room).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = accept() => match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning, and say so once.
                    if !failing {
                        warn!(listener = ?kind, %error, "Cannot accept connections; retrying every 100 ms.");
                        failing = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        if std::mem::take(&mut failing) {
            info!(listener = ?kind, "Accepting connections again.");
        }
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
            drop(permit);
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        warn!(listener = ?kind, "Connections still open after the grace period were closed.");
    }
}
