//! The admin listener's accept loop: at most `PER_SOURCE` connections from
//! one address and `TOTAL` in all (more are closed at once), and a
//! connection that moves no byte for `IDLE` is closed, so nobody holds the
//! listener with idle connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::net::sources::{SourceSlot, Sources};

/// Connections at once from one address.
pub const PER_SOURCE: usize = 8;
/// Connections at once in all.
pub const TOTAL: usize = 64;
/// A connection that moves no byte this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

pub struct Bounded {
    tcp: TcpListener,
    sources: Arc<Sources>,
    total: Arc<tokio::sync::Semaphore>,
}

impl Bounded {
    pub fn new(tcp: TcpListener) -> Bounded {
        Bounded {
            tcp,
            sources: Arc::default(),
            total: Arc::new(tokio::sync::Semaphore::new(TOTAL)),
        }
    }
}

/// An accepted connection with its places, closed when idle.
pub struct Conn {
    stream: TcpStream,
    _slot: SourceSlot,
    _permit: tokio::sync::OwnedSemaphorePermit,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl Conn {
    fn moved(&mut self) {
        self.idle.as_mut().reset(tokio::time::Instant::now() + IDLE);
    }

    /// The stream is not ready: wait, unless it has been idle too long.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.idle.as_mut().poll(cx).is_ready() {
            Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
        } else {
            Poll::Pending
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, data) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: wait, then go on.
                    tracing::debug!(target: "dialtone::admin", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.total).try_acquire_owned() else {
                tracing::debug!(target: "dialtone::admin", %peer, total = TOTAL, "admin connection refused: the listener is full");
                continue;
            };
            let slot = match self.sources.take(peer.ip(), PER_SOURCE) {
                Ok(s) => s,
                Err(first) => {
                    if first {
                        tracing::warn!(target: "dialtone::admin", %peer, cap = PER_SOURCE, "too many admin connections from one address; closing the rest");
                    }
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            return (
                Conn {
                    stream,
                    _slot: slot,
                    _permit: permit,
                    idle: Box::pin(tokio::time::sleep(IDLE)),
                },
                peer,
            );
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// The peer's address, as handlers see it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Bounded>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Bounded>) -> Peer {
        Peer(*stream.remote_addr())
    }
}
