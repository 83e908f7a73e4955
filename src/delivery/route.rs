//! The way to a receiver: a TCP connection straight to it, or a CONNECT tunnel through an HTTP proxy.
//! TLS runs over either, end to end with the receiver and verified as always; the proxy sees only the
//! host and port. The CONNECT exchange is hyper's own client (`CONNECT host:port`, then an upgrade), so
//! the proxy's answer is read by hyper and its status is known; once the tunnel is open the upgraded
//! connection is taken back as the plain TCP stream it is. A proxy's failure is told in words and names
//! the proxy's `host:port`, never its credentials.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::config::Proxy;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Opens the stream a delivery's TLS runs over.
#[derive(Clone)]
pub enum Route {
    Direct(HttpConnector),
    Tunnel { http: HttpConnector, proxy: Proxy },
}

impl Route {
    pub fn new(http: HttpConnector, proxy: Option<&Proxy>) -> Route {
        match proxy {
            None => Route::Direct(http),
            Some(proxy) => Route::Tunnel { http, proxy: proxy.clone() },
        }
    }
}

impl Service<Uri> for Route {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Route::Direct(http) | Route::Tunnel { http, .. } => http.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        match self {
            Route::Direct(http) => {
                let connecting = http.call(destination);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            Route::Tunnel { http, proxy } => {
                let connecting = http.call(proxy.uri.clone());
                let proxy = proxy.clone();
                Box::pin(async move {
                    let target = match (destination.host(), destination.port_u16().unwrap_or(443)) {
                        (Some(host), port) => format!("{host}:{port}"),
                        (None, _) => return Err(ProxyError::new(&proxy, "", Failure::NoHost).into()),
                    };
                    let stream = connecting
                        .await
                        .map_err(|cause| ProxyError::new(&proxy, &target, Failure::Connect(cause.into())))?;
                    open_tunnel(stream, &proxy, &target)
                        .await
                        .map_err(|failure| ProxyError::new(&proxy, &target, failure).into())
                })
            }
        }
    }
}

/// Asks the proxy on `stream` for a tunnel to `target` (`host:port`) and returns the stream once it is open.
async fn open_tunnel(stream: TokioIo<TcpStream>, proxy: &Proxy, target: &str) -> Result<TokioIo<TcpStream>, Failure> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(stream)
        .await
        .map_err(|e| Failure::Exchange(e.into()))?;
    let mut request = Request::connect(target).header(http::header::HOST, target);
    if let Some(authorization) = &proxy.authorization {
        request = request.header(http::header::PROXY_AUTHORIZATION, authorization.clone());
    }
    let request = request.body(Empty::new()).map_err(|_| Failure::NoHost)?;
    let exchange = async move {
        let response = sender.send_request(request).await.map_err(|e| Failure::Exchange(e.into()))?;
        if !response.status().is_success() {
            return Err(Failure::Refused(response.status()));
        }
        hyper::upgrade::on(response).await.map_err(|e| Failure::Exchange(e.into()))
        // `sender` is dropped here, so a connection left without an upgrade ends too.
    };
    let (upgraded, _) = tokio::join!(exchange, connection.with_upgrades());
    let parts = upgraded?.downcast::<TokioIo<TcpStream>>().map_err(|_| Failure::NotTcp)?;
    if !parts.read_buf.is_empty() {
        // The receiver speaks first only after our TLS hello; bytes now came from the proxy.
        return Err(Failure::Chatter);
    }
    Ok(parts.io)
}

#[derive(Debug)]
enum Failure {
    NoHost,
    Connect(BoxError),
    Exchange(BoxError),
    Refused(StatusCode),
    NotTcp,
    Chatter,
}

/// A tunnel that could not be opened, in the words an operator needs.
#[derive(Debug)]
pub struct ProxyError {
    proxy: String,
    target: String,
    failure: Failure,
}

impl ProxyError {
    fn new(proxy: &Proxy, target: &str, failure: Failure) -> ProxyError {
        ProxyError { proxy: proxy.shown.clone(), target: target.to_owned(), failure }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (proxy, target) = (&self.proxy, &self.target);
        match &self.failure {
            Failure::NoHost => write!(f, "the proxy {proxy} cannot be asked for a URL without a host"),
            Failure::Connect(_) => write!(f, "cannot connect to the proxy {proxy}"),
            Failure::Exchange(_) => write!(f, "the proxy {proxy} broke off the CONNECT to {target}"),
            Failure::Refused(StatusCode::PROXY_AUTHENTICATION_REQUIRED) => write!(
                f,
                "the proxy {proxy} answered 407 Proxy Authentication Required: give `proxy` a user:password it accepts"
            ),
            Failure::Refused(status) => write!(
                f,
                "the proxy {proxy} refused the tunnel to {target}: it answered {status}; check that it allows CONNECT to this host and port"
            ),
            Failure::NotTcp | Failure::Chatter => {
                write!(f, "the proxy {proxy} answered CONNECT to {target} in a way the relay cannot use")
            }
        }
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.failure {
            Failure::Connect(cause) | Failure::Exchange(cause) => Some(&**cause),
            _ => None,
        }
    }
}
