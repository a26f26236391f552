//! HTTP/1.1 file serving on hyper: GET and HEAD from the resolver, one byte
//! range, conditional requests, streamed bodies, no listings.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::conditional::{Conditions, Meta, Plan, plan};
use crate::files::path::percent_decode;
use crate::files::resolve::{Body as FoundBody, Miss, Resolver, read_chunk};
use crate::files::transfers::{Counters, Outcome, Transfer};
use crate::net::{ifaces, sockets};

/// Bytes read from disk at a time for a response body.
const CHUNK: usize = 256 << 10;

pub struct Http {
    pub resolver: Arc<Resolver>,
    pub counters: Arc<Counters>,
}

/// Serves every listener until dropped. `0.0.0.0:port` is that port on
/// each served interface (bound to the device); other addresses are bound
/// as they are.
pub async fn run(
    listeners: Vec<SocketAddrV4>,
    interfaces: Vec<String>,
    http: Arc<Http>,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for addr in listeners {
        if addr.ip().is_unspecified() {
            let http = Arc::clone(&http);
            tasks.spawn(ifaces::serve_each(
                interfaces.clone(),
                "HTTP",
                move |name| serve_interface(name, addr.port(), Arc::clone(&http)),
            ));
        } else {
            let http = Arc::clone(&http);
            tasks.spawn(async move {
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
                tracing::info!(target: "dialtone::files", address = %addr, "serving HTTP");
                accept(l, http).await
            });
        }
    }
    crate::first_exit(&mut tasks).await
}

/// HTTP on `port` of one interface, until dropped.
async fn serve_interface(name: String, port: u16, http: Arc<Http>) -> anyhow::Result<()> {
    let l = sockets::tcp_listener(&name, port)
        .with_context(|| format!("cannot listen for HTTP on {name} TCP port {port}"))?;
    tracing::info!(target: "dialtone::files", interface = %name, port, "serving HTTP");
    accept(l, http).await
}

async fn accept(listener: TcpListener, http: Arc<Http>) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "dialtone::files", error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let http = Arc::clone(&http);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let http = Arc::clone(&http);
                async move { Ok::<_, std::convert::Infallible>(handle(&http, req, peer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(target: "dialtone::files", client = %peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

fn client_ip(peer: SocketAddr) -> Ipv4Addr {
    match peer.ip() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    }
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "cfg" | "txt" | "ini" | "conf" | "log" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "json" => "application/json",
        "htm" | "html" => "text/html; charset=utf-8",
        "pem" | "crt" | "cer" => "application/x-x509-ca-cert",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

fn simple(status: StatusCode, text: &str) -> Response<FileBody> {
    let mut r = Response::new(FileBody::text(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(http: &Arc<Http>, req: Request<Incoming>, peer: SocketAddr) -> Response<FileBody> {
    let ip = client_ip(peer);
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = simple(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let raw_path = req.uri().path().to_string();
    let client = http.resolver.client(ip);
    let mut record = Transfer::begin("http", &client, &raw_path);
    let Some(decoded) = percent_decode(&raw_path) else {
        record.outcome = Outcome::Refused;
        record.detail = "malformed percent escape".into();
        http.counters.finish(&record);
        return simple(StatusCode::BAD_REQUEST, "malformed path");
    };
    let found = match http.resolver.resolve_async(&decoded, client, true).await {
        Ok(f) => f,
        Err(miss) => {
            let status = match &miss {
                Miss::NotFound | Miss::Private { .. } => StatusCode::NOT_FOUND,
                Miss::Refused(_) => StatusCode::FORBIDDEN,
                Miss::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                Miss::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            record.missed(&miss);
            record.detail = format!("{} {}", status.as_u16(), record.detail)
                .trim_end()
                .to_string();
            http.counters.finish(&record);
            let text = status.canonical_reason().unwrap_or("error");
            return simple(status, text);
        }
    };
    let meta = Meta::new(found.size, found.modified);
    let h = req.headers();
    let get = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    let conditions = Conditions {
        head,
        if_none_match: get(header::IF_NONE_MATCH),
        if_modified_since: get(header::IF_MODIFIED_SINCE),
        range: get(header::RANGE),
        if_range: get(header::IF_RANGE),
    };
    let decision = plan(&conditions, &meta);
    let (status, start, len) = match decision {
        Plan::Full => (StatusCode::OK, 0, meta.size),
        Plan::Range { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Plan::NotModified => (StatusCode::NOT_MODIFIED, 0, 0),
        Plan::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, 0, 0),
    };
    record.file = Some(found.path.clone());
    record.total = Some(meta.size);
    record.detail = format!(
        "{} {}{}",
        if head { "HEAD" } else { "GET" },
        status.as_u16(),
        match decision {
            Plan::Range { start, end } => format!(" bytes {start}-{end}"),
            _ => String::new(),
        }
    );
    let finish = Finish {
        counters: Arc::clone(&http.counters),
        record,
        expected: len,
        // What counts as done when every expected byte went out.
        done: match decision {
            Plan::Full if !head => Outcome::Complete,
            Plan::NotModified => Outcome::NotModified,
            Plan::Unsatisfiable => Outcome::Refused,
            _ => Outcome::Partial,
        },
    };
    let body = if head || len == 0 {
        FileBody::empty(Some(finish))
    } else {
        FileBody::new(found.body, start, len, finish)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let hs = r.headers_mut();
    let set = |hs: &mut hyper::HeaderMap, k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            hs.insert(k, v);
        }
    };
    set(hs, header::ETAG, meta.etag.clone());
    set(hs, header::LAST_MODIFIED, meta.last_modified());
    hs.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match decision {
        Plan::NotModified => {}
        Plan::Unsatisfiable => {
            set(hs, header::CONTENT_RANGE, format!("bytes */{}", meta.size));
            set(hs, header::CONTENT_LENGTH, "0".into());
        }
        _ => {
            hs.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&found.path)),
            );
            set(hs, header::CONTENT_LENGTH, len.to_string());
            if let Plan::Range { start, end } = decision {
                set(
                    hs,
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{}", meta.size),
                );
            }
        }
    }
    r
}

/// Logs and counts a response once its body is done or dropped.
struct Finish {
    counters: Arc<Counters>,
    record: Transfer,
    expected: u64,
    done: Outcome,
}

impl Finish {
    fn report(mut self, sent: u64, failed: bool) {
        self.record.sent = sent;
        self.record.outcome = if failed {
            Outcome::Failed
        } else if sent >= self.expected {
            self.done
        } else {
            Outcome::AbortedByClient
        };
        self.counters.finish(&self.record);
    }
}

type ReadJob = Pin<Box<dyn Future<Output = io::Result<Vec<u8>>> + Send>>;

/// A response body: a short text, nothing, or a file (or generated bytes)
/// streamed in chunks read off the runtime.
pub struct FileBody {
    source: Source,
    /// Next offset to read and bytes still to send.
    at: u64,
    left: u64,
    sent: u64,
    reading: Option<ReadJob>,
    finish: Option<Finish>,
    failed: bool,
}

enum Source {
    None,
    Memory(Bytes),
    File(Arc<std::fs::File>),
}

impl FileBody {
    fn text(t: String) -> FileBody {
        let n = t.len() as u64;
        FileBody {
            source: Source::Memory(Bytes::from(t)),
            at: 0,
            left: n,
            sent: 0,
            reading: None,
            finish: None,
            failed: false,
        }
    }

    fn empty(finish: Option<Finish>) -> FileBody {
        FileBody {
            source: Source::None,
            at: 0,
            left: 0,
            sent: 0,
            reading: None,
            finish,
            failed: false,
        }
    }

    fn new(body: FoundBody, start: u64, len: u64, finish: Finish) -> FileBody {
        FileBody {
            source: match body {
                FoundBody::File(f) => Source::File(Arc::new(f)),
                FoundBody::Bytes(b) => Source::Memory(b),
            },
            at: start,
            left: len,
            sent: 0,
            reading: None,
            finish: Some(finish),
            failed: false,
        }
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if let Some(f) = self.finish.take() {
            f.report(self.sent, self.failed);
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let chunk = match &this.source {
            Source::None => return Poll::Ready(None),
            Source::Memory(b) => {
                let from = this.at as usize;
                let to = (this.at + this.left) as usize;
                b.get(from..to)
                    .map(|_| b.slice(from..to))
                    .unwrap_or_default()
            }
            Source::File(f) => {
                if this.reading.is_none() {
                    let f = Arc::clone(f);
                    let (at, want) = (this.at, (this.left.min(CHUNK as u64)) as usize);
                    this.reading = Some(Box::pin(read_chunk(f, at, want)));
                }
                let Some(job) = this.reading.as_mut() else {
                    return Poll::Ready(None);
                };
                let result = match job.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                this.reading = None;
                match result {
                    Ok(v) => Bytes::from(v),
                    Err(e) => {
                        this.failed = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        };
        if chunk.is_empty() {
            // The file shrank under us: end with an error so the client
            // sees a short body rather than a hang.
            this.failed = true;
            return Poll::Ready(Some(Err(io::Error::other("file shrank while being sent"))));
        }
        let n = chunk.len() as u64;
        this.at += n;
        this.left -= n;
        this.sent += n;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
