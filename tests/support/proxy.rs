//! A real HTTP CONNECT proxy on 127.0.0.1 (hyper's server and upgrade): it opens tunnels to where it is
//! asked, or refuses as the test scripts it, and records every CONNECT it saw.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// How the proxy answers CONNECT.
#[derive(Debug, Clone)]
pub enum ProxyMode {
    /// Opens every tunnel.
    Open,
    /// Opens tunnels only for this `Proxy-Authorization` value; 407 otherwise.
    RequireAuthorization(String),
    /// Answers every CONNECT with this status.
    Refuse(u16),
}

/// One CONNECT as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Connect {
    /// The request target, `host:port`.
    pub target: String,
    pub authorization: Option<String>,
}

pub struct ConnectProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Connect>>>,
}

impl ConnectProxy {
    pub async fn start(mode: ProxyMode) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (mode, seen) = (mode.clone(), Arc::clone(&recorded));
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(mode.clone(), Arc::clone(&seen), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades().await;
                });
            }
        });
        ConnectProxy { port, seen }
    }

    /// `http://127.0.0.1:<port>`, optionally with credentials.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(user_password) => format!("http://{user_password}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    pub fn connects(&self) -> Vec<Connect> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    mode: ProxyMode,
    seen: Arc<Mutex<Vec<Connect>>>,
    request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let status = |code: u16| {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::from_u16(code).unwrap();
        Ok(response)
    };
    if request.method() != Method::CONNECT {
        return status(405);
    }
    let target = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
    let authorization =
        request.headers().get(http::header::PROXY_AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned());
    seen.lock().unwrap().push(Connect { target: target.clone(), authorization: authorization.clone() });
    match &mode {
        ProxyMode::Refuse(code) => return status(*code),
        ProxyMode::RequireAuthorization(expected) if authorization.as_deref() != Some(expected) => return status(407),
        _ => {}
    }
    let Ok(upstream) = TcpStream::connect(&target).await else { return status(502) };
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(request).await {
            let mut client = TokioIo::new(upgraded);
            let mut upstream = upstream;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    status(200)
}
