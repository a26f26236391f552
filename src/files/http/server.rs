//! HTTP/1.1 file serving: GET and HEAD from the resolver, one byte range,
//! conditional requests, keep-alive, no listings. File bodies go from the
//! page cache to the socket with sendfile(2), never through memory here.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};

use super::conditional::{Conditions, Meta, Plan, plan};
use super::wire::{self, BodyLen, Head};
use crate::files::path::percent_decode;
use crate::files::resolve::{Body as FoundBody, Miss, Resolver, Stamp, fill_at};
use crate::files::transfers::{Counters, Live, Outcome, Tracked, Transfer};
use crate::net::sources::Sources;
use tokio::sync::watch;

use crate::config::Config;
use crate::files::LiveServices;
use crate::net::places::{self, Place};
use crate::net::ready::{Readiness, Report};
use crate::net::sockets;
use crate::sys::cache;

/// A response whose client takes nothing for this long is abandoned.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// A request body (GET and HEAD need none) up to this size is read and
/// ignored; a bigger one is refused.
const BODY_DISCARD: u64 = 64 << 10;
/// Bytes per sendfile(2) call at most.
const SENDFILE_MAX: usize = 16 << 20;
/// Bodies larger than this send their last byte on its own, after a last
/// look at whether the file changed.
const HOLD_BACK_FROM: u64 = 1 << 20;

pub struct Http {
    pub resolver: Arc<Resolver>,
    pub counters: Arc<Counters>,
    /// How long a client has to send a whole request head (`[files]
    /// http_head_timeout`); then 408 and the connection is closed.
    pub head_timeout: Duration,
    /// Connections at once from one source address (`[files]
    /// http_per_source`).
    pub per_source: usize,
    /// Where bodies being sent are listed with their progress.
    pub live: Arc<Live>,
    /// The upload folder and the largest upload (`[files] upload`,
    /// `upload_max`): HTTP PUT writes there (Yealink's `<mac>-local.cfg`,
    /// its logs); none, PUT is refused.
    pub upload: Option<(std::path::PathBuf, u64)>,
}

/// Serves every listener until dropped. `0.0.0.0:port` is that port on
/// each served interface (bound to the device); other addresses are bound
/// as they are.
pub async fn run(
    live: watch::Receiver<Arc<Config>>,
    services: LiveServices,
    ready: Arc<Readiness>,
) -> anyhow::Result<()> {
    places::serve(
        live,
        "HTTP",
        ready,
        |c| listeners(c),
        move |place, report| {
            let services = services.clone();
            async move {
                let addr: SocketAddrV4 = place
                    .settings
                    .parse()
                    .map_err(|_| anyhow::anyhow!("bad HTTP listener {}", place.settings))?;
                match place.interface {
                    Some(name) => serve_interface(name, addr.port(), services, report).await,
                    None => {
                        let l = TcpListener::bind(addr)
                            .await
                            .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
                        report.bound();
                        tracing::info!(target: "dialtone::files", address = %addr, "serving HTTP");
                        accept(l, services).await
                    }
                }
            }
        },
    )
    .await
}

/// Where HTTP listens under `config`: each `[files] http` listener,
/// `0.0.0.0:port` on each served interface (bound to the device), any other
/// address as it is.
pub fn listeners(config: &Config) -> Vec<Place> {
    let Some(files) = &config.files else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for addr in &files.http {
        if addr.ip().is_unspecified() {
            for i in &config.server.interfaces {
                out.push(Place {
                    label: format!("{i}:{}", addr.port()),
                    interface: Some(i.clone()),
                    settings: addr.to_string(),
                });
            }
        } else {
            out.push(Place {
                label: addr.to_string(),
                interface: None,
                settings: addr.to_string(),
            });
        }
    }
    out
}

/// HTTP on `port` of one interface, until dropped.
async fn serve_interface(
    name: String,
    port: u16,
    services: LiveServices,
    report: Report,
) -> anyhow::Result<()> {
    let l = sockets::tcp_listener(&name, port)
        .with_context(|| format!("cannot listen for HTTP on {name} TCP port {port}"))?;
    report.bound();
    tracing::info!(target: "dialtone::files", interface = %name, port, "serving HTTP");
    accept(l, services).await
}

/// Accepts connections; each is answered by the file services of the live
/// configuration when it came in (a reload does not change a connection's).
async fn accept(listener: TcpListener, services: LiveServices) -> anyhow::Result<()> {
    let sources = Arc::new(Sources::default());
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
        let Some(http) = services.borrow().as_ref().map(|s| Arc::clone(&s.http)) else {
            continue;
        };
        let slot = match sources.take(peer.ip(), http.per_source) {
            Ok(slot) => slot,
            Err(first) => {
                crate::counters::bump(crate::counters::Counter::HttpRefused);
                if first {
                    tracing::warn!(target: "dialtone::files", client = %peer.ip(), open = http.per_source, "too many HTTP connections from one address: further ones are refused (503) until some close");
                }
                tokio::spawn(async move {
                    let mut stream = stream;
                    let mut r = Response::text(503, reason_text(503));
                    r.headers.push(("Retry-After", "5".into()));
                    let _ = send(&mut stream, r, false, false).await;
                    linger(&mut stream).await;
                });
                continue;
            }
        };
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(stream, peer, &http).await {
                tracing::debug!(target: "dialtone::files", client = %peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

/// Requests on one connection, answered in order, until the client closes,
/// asks to close, or sends something unreadable.
async fn connection(mut stream: TcpStream, peer: SocketAddr, http: &Http) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let head = match tokio::time::timeout(http.head_timeout, read_head(&mut stream, &mut buf))
            .await
        {
            // Idle between requests: closed quietly. Inside a head (a slow
            // sender): 408, then closed.
            Err(_) if buf.is_empty() => return Ok(()),
            Err(_) => {
                crate::counters::bump(crate::counters::Counter::HttpRefused);
                tracing::info!(target: "dialtone::files", client = %peer, status = 408, seconds = http.head_timeout.as_secs(), "HTTP request head not complete in time");
                send(
                    &mut stream,
                    Response::text(408, reason_text(408)),
                    false,
                    false,
                )
                .await?;
                linger(&mut stream).await;
                return Ok(());
            }
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(Refusal(status, why))) => {
                crate::counters::bump(crate::counters::Counter::HttpRefused);
                tracing::info!(target: "dialtone::files", client = %peer, status, reason = %why, "HTTP request refused");
                let r = Response::text(status, reason_text(status));
                send(&mut stream, r, false, false).await?;
                linger(&mut stream).await;
                return Ok(());
            }
        };
        if head.method == "PUT" {
            let (response, read_all) = put(http, &head, peer, &mut stream, &mut buf).await;
            let keep_alive = head.keep_alive && read_all && response.status < 500;
            send(&mut stream, response, keep_alive, false).await?;
            if !keep_alive {
                if !read_all {
                    linger(&mut stream).await;
                }
                return Ok(());
            }
            continue;
        }
        // GET and HEAD carry no body; a small one is read and ignored so
        // the next request starts where it should.
        let mut keep_alive = head.keep_alive;
        match head.body {
            BodyLen::None => {}
            BodyLen::Length(n) if n <= BODY_DISCARD => {
                discard(&mut stream, &mut buf, n as usize).await?;
            }
            BodyLen::Length(_) | BodyLen::Chunked => {
                let status = if head.body == BodyLen::Chunked {
                    411
                } else {
                    413
                };
                crate::counters::bump(crate::counters::Counter::HttpRefused);
                tracing::info!(target: "dialtone::files", client = %peer, status, "HTTP request with a body refused");
                send(
                    &mut stream,
                    Response::text(status, reason_text(status)),
                    false,
                    false,
                )
                .await?;
                linger(&mut stream).await;
                return Ok(());
            }
        }
        let response = handle(http, &head, peer).await;
        let is_head = head.method == "HEAD";
        if response.status >= 500 {
            keep_alive = false;
        }
        send(&mut stream, response, keep_alive, is_head).await?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Closes a connection whose client may still be sending (a refused
/// request): our side is shut first and what arrives meanwhile is read and
/// dropped, for up to 2 s or 1 MiB. Closing with unread bytes would send a
/// reset, which can make the client drop the answer before reading it.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left: usize = 1 << 20;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// Why a request was answered with an error and the connection closed.
struct Refusal(u16, String);

/// The next request head: `None` when the client closed between requests.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Head>, Refusal> {
    loop {
        match wire::parse(buf) {
            Ok(Some((head, used))) => {
                buf.drain(..used);
                return Ok(Some(head));
            }
            Ok(None) => {}
            Err(e) => return Err(Refusal(e.status(), e.to_string())),
        }
        let mut chunk = [0u8; 4096];
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) => return Err(Refusal(400, e.to_string())),
        };
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(Refusal(
                400,
                "connection closed inside a request head".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads and drops `n` bytes of request body (some may be buffered).
async fn discard(stream: &mut TcpStream, buf: &mut Vec<u8>, mut n: usize) -> io::Result<()> {
    let have = n.min(buf.len());
    buf.drain(..have);
    n -= have;
    let mut sink = [0u8; 4096];
    while n > 0 {
        let want = n.min(sink.len());
        let got = within(SEND_TIMEOUT, stream.read(&mut sink[..want])).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n -= got;
    }
    Ok(())
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

fn reason_text(status: u16) -> &'static str {
    match status {
        405 => "only GET and HEAD (and PUT into the upload folder when one is set)",
        _ => wire::reason(status),
    }
}

/// An answer: status, headers, and what follows them.
struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    payload: Payload,
    finish: Option<Finish>,
}

enum Payload {
    Empty,
    Memory(Bytes),
    /// `len` bytes of the file from `start`.
    File {
        file: std::fs::File,
        start: u64,
        len: u64,
        /// Listed among the transfers in progress until sent.
        progress: Tracked,
    },
}

impl Response {
    fn text(status: u16, text: &str) -> Response {
        let body = Bytes::from(format!("{text}\n"));
        Response {
            status,
            headers: vec![
                ("Content-Type", "text/plain; charset=utf-8".into()),
                ("Content-Length", body.len().to_string()),
            ],
            payload: Payload::Memory(body),
            finish: None,
        }
    }
}

async fn handle(http: &Http, req: &Head, peer: SocketAddr) -> Response {
    let ip = client_ip(peer);
    let head = req.method == "HEAD";
    if req.method != "GET" && !head {
        let mut r = Response::text(405, reason_text(405));
        let allow = if http.upload.is_some() {
            "GET, HEAD, PUT"
        } else {
            "GET, HEAD"
        };
        r.headers.push(("Allow", allow.into()));
        return r;
    }
    let client = http.resolver.client(ip);
    let mut record = Transfer::begin("http", &client, &req.path);
    record.agent = req.header("user-agent").map(user_agent);
    let Some(decoded) = percent_decode(&req.path) else {
        record.outcome = Outcome::Refused;
        record.detail = "malformed percent escape".into();
        http.counters.finish(&record);
        return Response::text(400, "malformed path");
    };
    let found = match http.resolver.resolve_async(&decoded, client, true).await {
        Ok(f) => f,
        Err(miss) => {
            let status = match &miss {
                Miss::NotFound | Miss::Private { .. } => 404,
                Miss::Refused(_) => 403,
                Miss::Slowed => 429,
                Miss::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => 403,
                Miss::Io(_) => 500,
            };
            record.missed(&miss);
            record.detail = format!("{status} {}", record.detail).trim_end().to_string();
            http.counters.finish(&record);
            let mut r = Response::text(status, wire::reason(status));
            if status == 429 {
                r.headers.push((
                    "Retry-After",
                    (super::super::sweep::REFILL_MS / 1000).to_string(),
                ));
            }
            return r;
        }
    };
    let meta = Meta::new(found.size, found.modified);
    let conditions = Conditions {
        head,
        if_none_match: req.header("if-none-match"),
        if_modified_since: req.header("if-modified-since"),
        range: req.header("range"),
        if_range: req.header("if-range"),
    };
    let decision = plan(&conditions, &meta);
    let (status, start, len) = match decision {
        Plan::Full => (200, 0, meta.size),
        Plan::Range { start, end } => (206, start, end - start + 1),
        Plan::NotModified => (304, 0, 0),
        Plan::Unsatisfiable => (416, 0, 0),
    };
    record.file = Some(found.path.clone());
    record.total = Some(meta.size);
    record.detail = format!(
        "{} {status}{}",
        if head { "HEAD" } else { "GET" },
        match decision {
            Plan::Range { start, end } => format!(" bytes {start}-{end}"),
            _ => String::new(),
        }
    );
    let finish = Finish {
        counters: Arc::clone(&http.counters),
        record,
        expected: if head { 0 } else { len },
        // What counts as done when every expected byte went out.
        done: match decision {
            Plan::Full if !head => Outcome::Complete,
            Plan::NotModified => Outcome::NotModified,
            Plan::Unsatisfiable => Outcome::Refused,
            _ => Outcome::Partial,
        },
    };
    let mut headers: Vec<(&'static str, String)> = vec![
        ("ETag", meta.etag.clone()),
        ("Last-Modified", meta.last_modified()),
        ("Accept-Ranges", "bytes".into()),
    ];
    match decision {
        Plan::NotModified => {}
        Plan::Unsatisfiable => {
            headers.push(("Content-Range", format!("bytes */{}", meta.size)));
            headers.push(("Content-Length", "0".into()));
        }
        _ => {
            headers.push(("Content-Type", content_type(&found.path).into()));
            headers.push(("Content-Length", len.to_string()));
            if let Plan::Range { start, end } = decision {
                headers.push((
                    "Content-Range",
                    format!("bytes {start}-{end}/{}", meta.size),
                ));
            }
        }
    }
    let payload = if head || len == 0 {
        Payload::Empty
    } else {
        match found.body {
            FoundBody::File(file) => Payload::File {
                file,
                start,
                len,
                progress: http.live.track(&finish.record, len),
            },
            FoundBody::Bytes(b) => {
                let from = (start as usize).min(b.len());
                let to = ((start + len) as usize).min(b.len());
                Payload::Memory(b.slice(from..to))
            }
        }
    };
    Response {
        status,
        headers,
        payload,
        finish: Some(finish),
    }
}

/// An HTTP PUT into the upload folder: the answer, and whether the body was
/// read to its end (if not, the connection is closed after the answer).
/// The body must come with a Content-Length within `upload_max`; the name
/// follows the upload folder's rules (a MAC in it only from that phone).
async fn put(
    http: &Http,
    req: &Head,
    peer: SocketAddr,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> (Response, bool) {
    let client = http.resolver.client(client_ip(peer));
    let mut record = Transfer::begin("http-upload", &client, &req.path);
    record.agent = req.header("user-agent").map(user_agent);
    let refuse = |record: &mut Transfer, status: u16, why: String| {
        record.outcome = Outcome::Refused;
        record.detail = format!("PUT {status}: {why}");
        http.counters.finish(record);
        let mut r = Response::text(status, wire::reason(status));
        if status == 405 {
            r.headers.push(("Allow", "GET, HEAD".into()));
        }
        (r, req.body == BodyLen::None)
    };
    let Some((folder, max)) = &http.upload else {
        return refuse(&mut record, 405, "no upload folder is set".into());
    };
    let len = match req.body {
        BodyLen::Length(n) => n,
        // `Content-Length: 0` reads as no body: an empty file.
        BodyLen::None if req.header("content-length").is_some() => 0,
        BodyLen::None | BodyLen::Chunked => {
            return refuse(&mut record, 411, "a PUT needs a Content-Length".into());
        }
    };
    record.total = Some(len);
    if len > *max {
        return refuse(
            &mut record,
            413,
            format!("{len} bytes; uploads are limited to {max} bytes"),
        );
    }
    let Some(decoded) = percent_decode(&req.path) else {
        return refuse(&mut record, 400, "malformed percent escape".into());
    };
    let parts = match crate::files::upload::target(
        &decoded,
        &folder.display().to_string(),
        client.mac,
        true,
    ) {
        Ok(p) => p,
        Err(why) => return refuse(&mut record, 403, why),
    };
    // A bounded number of uploads at once, whoever sends them.
    let Some(_slot) = UploadSlot::take() else {
        return refuse(
            &mut record,
            503,
            format!("{UPLOADS_AT_ONCE} uploads are running"),
        );
    };
    let opened = {
        let folder = folder.clone();
        tokio::task::spawn_blocking(move || {
            crate::files::upload::open_partial(&folder, &parts)
                .map(|(target, partial, file)| (target.exists(), target, partial, file))
        })
        .await
    };
    let (existed, target, mut partial, file) = match opened {
        Ok(Ok(x)) => x,
        // A folder where the name is, or a name too long: the name's fault.
        Ok(Err(e))
            if e.kind() == io::ErrorKind::Other || e.raw_os_error() == Some(libc::ENAMETOOLONG) =>
        {
            return refuse(&mut record, 403, e.to_string());
        }
        Ok(Err(e)) => {
            record.outcome = Outcome::Failed;
            record.detail = format!("PUT 500: {e}");
            http.counters.finish(&record);
            return (Response::text(500, wire::reason(500)), false);
        }
        Err(e) => return refuse(&mut record, 500, e.to_string()),
    };
    // A client that asked to be told before sending the body.
    if req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        && write_all(stream, b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        record.outcome = Outcome::AbortedByClient;
        http.counters.finish(&record);
        return (Response::text(400, wire::reason(400)), false);
    }
    record.file = Some(target.display().to_string());
    let mut out = tokio::io::BufWriter::with_capacity(64 << 10, tokio::fs::File::from_std(file));
    // The whole body within a minute plus a second per 64 KiB: a sender
    // dribbling a byte a minute does not hold its slot for ever.
    let deadline = tokio::time::Instant::now() + SEND_TIMEOUT + Duration::from_secs(len >> 16);
    // The bytes of the body already read with the head, then the rest.
    let mut left = len;
    let have = (left as usize).min(buf.len());
    let mut wrote = out.write_all(&buf[..have]).await;
    buf.drain(..have);
    left -= have as u64;
    let mut chunk = vec![0u8; 16 << 10];
    while left > 0 && wrote.is_ok() {
        let want = (left as usize).min(chunk.len());
        let read = tokio::time::timeout_at(
            deadline,
            within(SEND_TIMEOUT, stream.read(&mut chunk[..want])),
        )
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
        match read {
            Ok(0) => {
                record.sent = len - left;
                record.outcome = Outcome::AbortedByClient;
                record.detail = "PUT: the body ended early".into();
                http.counters.finish(&record);
                return (Response::text(400, wire::reason(400)), false);
            }
            Ok(n) => {
                wrote = out.write_all(&chunk[..n]).await;
                left -= n as u64;
            }
            Err(e) => {
                record.sent = len - left;
                record.outcome = if e.kind() == io::ErrorKind::TimedOut {
                    Outcome::Timeout
                } else {
                    Outcome::AbortedByClient
                };
                record.detail = format!("PUT: {e}");
                http.counters.finish(&record);
                return (Response::text(408, wire::reason(408)), false);
            }
        }
    }
    record.sent = len - left;
    if wrote.is_ok() {
        wrote = crate::files::upload::put_in_place(&mut out, &partial.path, &target).await;
        partial.kept = wrote.is_ok();
    }
    if let Err(e) = wrote {
        record.outcome = Outcome::Failed;
        record.detail = format!("PUT: cannot store the file: {e}");
        http.counters.finish(&record);
        return (Response::text(500, wire::reason(500)), left == 0);
    }
    let status = if existed { 204 } else { 201 };
    record.outcome = Outcome::Complete;
    record.detail = format!("PUT {status}");
    http.counters.finish(&record);
    let mut r = Response::text(status, "");
    if status == 204 {
        r.headers
            .retain(|(k, _)| *k != "Content-Length" && *k != "Content-Type");
        r.payload = Payload::Empty;
    }
    (r, true)
}

/// HTTP uploads running at once, at most.
const UPLOADS_AT_ONCE: usize = 16;

/// One of the `UPLOADS_AT_ONCE` places, given back when dropped.
struct UploadSlot;

static UPLOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl UploadSlot {
    fn take() -> Option<UploadSlot> {
        use std::sync::atomic::Ordering;
        UPLOADS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < UPLOADS_AT_ONCE).then_some(n + 1)
            })
            .ok()
            .map(|_| UploadSlot)
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        UPLOADS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Writes a response; its event is logged however it ends.
async fn send(
    stream: &mut TcpStream,
    r: Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut head = wire::response_head(r.status, &r.headers, keep_alive, SystemTime::now());
    let mut sent = 0u64;
    let result = match r.payload {
        _ if head_only => write_all(stream, &head).await,
        Payload::Empty => write_all(stream, &head).await,
        Payload::Memory(b) => {
            head.extend_from_slice(&b);
            let r = write_all(stream, &head).await;
            if r.is_ok() {
                sent = b.len() as u64;
            }
            r
        }
        Payload::File {
            file,
            start,
            len,
            progress,
        } => {
            // The head waits for the first bytes of the file (MSG_MORE),
            // so a small file leaves in one segment.
            match send_more(stream, &head).await {
                Ok(()) => send_file(stream, &file, start, len, &mut sent, &progress).await,
                Err(e) => Err(e),
            }
        }
    };
    if let Some(f) = r.finish {
        f.report(sent, &result);
    }
    result
}

/// `f`, or a `TimedOut` error if it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// `op` (a non-blocking write) once the socket takes data, within
/// `SEND_TIMEOUT`.
async fn when_writable<T>(
    stream: &TcpStream,
    mut op: impl FnMut() -> nix::Result<T>,
) -> io::Result<T> {
    within(
        SEND_TIMEOUT,
        stream.async_io(Interest::WRITABLE, || op().map_err(io::Error::from)),
    )
    .await
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    within(SEND_TIMEOUT, stream.write_all(bytes)).await
}

async fn send_more(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{MsgFlags, send};
    let flags = MsgFlags::from_bits_retain(libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL;
    while !bytes.is_empty() {
        let n = when_writable(stream, || send(stream.as_raw_fd(), bytes, flags)).await?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// `len` bytes of `file` from `start`, straight from the page cache to the
/// socket. A file that shrinks under us ends the response short (the
/// client sees fewer bytes than Content-Length).
async fn send_file(
    stream: &TcpStream,
    file: &std::fs::File,
    start: u64,
    len: u64,
    sent: &mut u64,
    progress: &Tracked,
) -> io::Result<()> {
    // Bytes before this were found in the cache or read into it.
    let mut ready_until = start;
    // A file written in place while it is sent breaks the connection
    // before its body is complete, so the client never takes a mix of old
    // and new bytes for the file: its stamp is checked before each
    // sendfile(2) call, and a large body's last byte goes alone, after the
    // last check. (A file replaced by a rename is the old file under this
    // descriptor: sent whole.)
    let stamp = Stamp::of(file)?;
    let hold_back = u64::from(len > HOLD_BACK_FROM);
    while *sent < len {
        if *sent > 0 {
            stamp.check(file)?;
        }
        let body_left = len - *sent;
        let this_call = if body_left > hold_back {
            body_left - hold_back
        } else {
            body_left
        };
        let left = usize::try_from(this_call)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_MAX);
        let at = start + *sent;
        if at >= ready_until {
            let end = at + left as u64;
            if !(cache::cached(file, at) && cache::cached(file, end - 1)) {
                read_into_cache(file, at, left).await;
            }
            ready_until = end;
        }
        let mut offset = i64::try_from(at).map_err(io::Error::other)?;
        let n = when_writable(stream, || {
            nix::sys::sendfile::sendfile(stream.as_fd(), file.as_fd(), Some(&mut offset), left)
        })
        .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ));
        }
        *sent += n as u64;
        progress.progress.set_sent(*sent);
    }
    Ok(())
}

/// A User-Agent as kept with the transfer: printable ASCII, at most 200
/// characters (phones put their model and firmware version there).
fn user_agent(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

/// Reads `len` bytes of `file` from `at` into the page cache off the
/// runtime, so that sendfile(2) then finds them there instead of holding a
/// runtime thread (and the DHCP, DNS and TFTP work queued on it) while a
/// slow disk or SD card reads them. Errors are left for sendfile to meet.
async fn read_into_cache(file: &std::fs::File, at: u64, len: usize) {
    let Ok(file) = file.try_clone() else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len.min(1 << 20)];
        let mut done = 0;
        while done < len {
            let want = buf.len().min(len - done);
            match fill_at(&file, &mut buf[..want], at + done as u64) {
                Ok(n) if n == want => done += n,
                // The file's end, or an error sendfile will meet.
                _ => break,
            }
        }
    })
    .await;
}

/// Logs and counts a response once it is sent or abandoned.
struct Finish {
    counters: Arc<Counters>,
    record: Transfer,
    expected: u64,
    done: Outcome,
}

impl Finish {
    fn report(mut self, sent: u64, result: &io::Result<()>) {
        self.record.sent = sent;
        self.record.outcome = match result {
            Ok(()) if sent >= self.expected => self.done,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Outcome::Timeout,
            // The file, not the client, ran short.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Outcome::Failed,
            _ => Outcome::AbortedByClient,
        };
        if let Err(e) = result {
            self.record.detail = format!("{}: {e}", self.record.detail);
        }
        self.counters.finish(&self.record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_range_not_in_the_cache_is_read_into_it_off_the_runtime() {
        let (f, path) = cache::cold_file("http-cache-test", 3 << 20);
        assert!(!cache::cached(&f, 1 << 20) && !cache::cached(&f, (3 << 20) - 1));
        read_into_cache(&f, 1 << 20, 2 << 20).await;
        assert!(cache::cached(&f, 1 << 20) && cache::cached(&f, (3 << 20) - 1));
        assert!(!cache::cached(&f, 0), "only the range asked for");
        assert_eq!(
            cache::resident_pages(&f, 3 << 20),
            512,
            "2 MiB of 4 KiB pages"
        );
        std::fs::remove_file(path).unwrap();
    }
}
