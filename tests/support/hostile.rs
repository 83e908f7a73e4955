//! A receiver that misbehaves below HTTP: it takes the TLS handshake and reads the request like a real
//! one, then never answers, trickles its answer, floods an enormous body, or resets the connection.
//! hyper cannot be made to do these, so this one writes its bytes by hand.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::tls::TestCa;
use super::within;

/// How the receiver misbehaves once it has read a request.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Keeps the connection open and says nothing.
    Silent,
    /// Sends its status line one byte at a time, far apart.
    Trickle,
    /// Answers 500 with a body of a gigabyte, written as fast as the relay takes it.
    Enormous,
    /// Sends half a status line, then resets the connection (RST, not FIN).
    Reset,
}

pub struct HostileReceiver {
    pub port: u16,
    requests: Arc<AtomicUsize>,
    /// Connections holding a request the receiver has not finished answering.
    open: Arc<watch::Sender<usize>>,
    bytes_sent: Arc<AtomicUsize>,
}

impl HostileReceiver {
    pub async fn start(ca: &TestCa, misbehaviour: Misbehaviour) -> HostileReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = HostileReceiver {
            port,
            requests: Arc::default(),
            open: Arc::new(watch::Sender::new(0)),
            bytes_sent: Arc::default(),
        };
        let acceptor = TlsAcceptor::from(Arc::clone(&ca.server));
        let (requests, open, bytes_sent) =
            (Arc::clone(&receiver.requests), Arc::clone(&receiver.open), Arc::clone(&receiver.bytes_sent));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let (requests, open, bytes_sent) = (Arc::clone(&requests), Arc::clone(&open), Arc::clone(&bytes_sent));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else { return };
                    if !read_request(&mut tls).await {
                        return;
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    open.send_modify(|n| *n += 1);
                    misbehave(tls, misbehaviour, &bytes_sent).await;
                    open.send_modify(|n| *n -= 1);
                });
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Requests read so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests whose connection the receiver is still misbehaving on (the relay has not hung up).
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Waits until `n` requests are held open at once.
    pub async fn wait_open(&self, n: usize) {
        let mut open = self.open.subscribe();
        within("requests held by the hostile receiver", open.wait_for(|open| *open >= n)).await.unwrap();
    }

    /// Response bytes the relay took (read from its socket) before it hung up.
    pub fn bytes_sent(&self) -> usize {
        self.bytes_sent.load(Ordering::SeqCst)
    }
}

/// Reads request headers and a `Content-Length` body; false if the connection ended first.
async fn read_request(tls: &mut TlsStream<TcpStream>) -> bool {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&seen[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while seen.len() < header_end + length {
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

async fn misbehave(mut tls: TlsStream<TcpStream>, misbehaviour: Misbehaviour, bytes_sent: &AtomicUsize) {
    match misbehaviour {
        Misbehaviour::Silent => {
            // Returns when the relay hangs up (its timeout).
            let _ = tls.read(&mut [0u8; 1]).await;
        }
        Misbehaviour::Trickle => {
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".iter().cycle() {
                if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Misbehaviour::Enormous => {
            let head =
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 1073741824\r\n\r\n";
            if tls.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'x'; 64 * 1024];
            for _ in 0..(1 << 14) {
                if tls.write_all(&block).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
                bytes_sent.fetch_add(block.len(), Ordering::SeqCst);
            }
        }
        Misbehaviour::Reset => {
            let _ = tls.write_all(b"HTTP/1.1 20").await;
            let _ = tls.flush().await;
            let (tcp, _) = tls.get_ref();
            // A zero linger makes close send RST instead of FIN.
            socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO)).unwrap();
        }
    }
}

/// A receiver whose first `served` connections answer every request with 200 after 20 ms (keep-alive) and whose
/// later connections stall in the TLS handshake: a receiver that stops taking new connections while its
/// old ones still work. It counts the connections open at once, and the most there ever were.
pub struct StalledHandshakes {
    pub port: u16,
    open: Arc<watch::Sender<usize>>,
    most: Arc<AtomicUsize>,
}

impl StalledHandshakes {
    pub async fn start(ca: &TestCa, served: usize) -> StalledHandshakes {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = TlsAcceptor::from(Arc::clone(&ca.server));
        let (open, most) = (Arc::new(watch::Sender::new(0usize)), Arc::new(AtomicUsize::new(0)));
        let (counted, highest) = (Arc::clone(&open), Arc::clone(&most));
        tokio::spawn(async move {
            for accepted in 0.. {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                counted.send_modify(|n| {
                    *n += 1;
                    highest.fetch_max(*n, Ordering::SeqCst);
                });
                let (counted, acceptor) = (Arc::clone(&counted), acceptor.clone());
                tokio::spawn(async move {
                    if accepted < served {
                        if let Ok(mut tls) = acceptor.accept(stream).await {
                            while read_request(&mut tls).await {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                if tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                                    break;
                                }
                            }
                        }
                    } else {
                        // Reads the ClientHello and whatever follows, answers nothing, until the relay hangs up.
                        let mut sink = [0u8; 4096];
                        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                    }
                    counted.send_modify(|n| *n -= 1);
                });
            }
        });
        StalledHandshakes { port, open, most }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    /// The most connections that were open at once.
    pub fn most_open(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Waits until `n` connections are open at once.
    pub async fn wait_open(&self, n: usize) {
        let mut open = self.open.subscribe();
        within("connections to the stalling receiver", open.wait_for(|open| *open >= n)).await.unwrap();
    }
}
