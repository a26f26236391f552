//! The admin listener (`[admin] listen`, loopback port 8080 by default):
//! the status page (`/`), each phone's page (`/phones/<mac>`), `/metrics`
//! (Prometheus) and `/health`. Read-only: nothing here changes state.
//! Built on axum (this listener has no sendfile hot path; the phones' file
//! server stays dialtone's own); pages are minijinja templates rendered on
//! a blocking thread, HTML-escaped throughout.

pub mod auth;
pub mod listener;
pub mod passwd;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::config::Config;
use crate::site::Site;
use crate::site::view::Filter;
use auth::{Credentials, Verdict};

struct App {
    site: Arc<Site>,
    templates: minijinja::Environment<'static>,
    credentials: std::sync::RwLock<Arc<Credentials>>,
    /// Answers made in the last second, by what was asked (the page per
    /// filter, the metrics per format): a page reloaded ten times a second,
    /// or by ten people, is made once.
    made: Mutex<HashMap<String, (std::time::Instant, bytes::Bytes)>>,
}

/// How long a made page or metrics text is served again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

impl App {
    /// The answer for `key` made within `FRESH_FOR`, or `make`'s, kept.
    /// (whether it was made now, the text)
    async fn made_once<E: std::fmt::Display + Send + 'static>(
        self: &Arc<App>,
        key: String,
        make: impl FnOnce(&App) -> Result<String, E> + Send + 'static,
    ) -> Result<(bool, bytes::Bytes), String> {
        if let Ok(m) = self.made.lock()
            && let Some((at, text)) = m.get(&key)
            && at.elapsed() < FRESH_FOR
        {
            return Ok((false, text.clone()));
        }
        let a = Arc::clone(self);
        let text = tokio::task::spawn_blocking(move || make(&a).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())??;
        let text = bytes::Bytes::from(text);
        if let Ok(mut m) = self.made.lock() {
            if m.len() >= 32 {
                m.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
                if m.len() >= 32 {
                    m.clear();
                }
            }
            m.insert(key, (std::time::Instant::now(), text.clone()));
        }
        Ok((true, text))
    }
}

/// The templates, built in.
pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // `.html` names are escaped for HTML (minijinja's default for them).
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("page.html", include_str!("templates/page.html")),
        ("phone.html", include_str!("templates/phone.html")),
        ("boot.html", include_str!("templates/boot.html")),
    ] {
        if let Err(e) = env.add_template(name, text) {
            tracing::error!(target: "dialtone::admin", template = name, error = %e, "built-in template does not parse");
        }
    }
    env
}

/// Serves the admin listener of the live configuration, rebinding when a
/// reload moves it, until dropped. A listener that cannot be bound is
/// logged and tried again every 5 s; the phones' services go on.
pub async fn run(site: Arc<Site>, mut live: watch::Receiver<Arc<Config>>) -> anyhow::Result<()> {
    let app = Arc::new(App {
        site,
        templates: templates(),
        credentials: std::sync::RwLock::new(Arc::new(Credentials::open())),
        made: Mutex::default(),
    });
    loop {
        let config = Arc::clone(&live.borrow_and_update());
        let Some(listen) = config.admin.listen else {
            if live.changed().await.is_err() {
                return Ok(());
            }
            continue;
        };
        match Credentials::load(&config.admin) {
            Ok(c) => {
                if let Ok(mut w) = app.credentials.write() {
                    *w = Arc::new(c);
                }
            }
            Err(e) => {
                // Nothing is answered rather than something unguarded.
                tracing::error!(target: "dialtone::admin", error = %e, "the admin listener's credentials cannot be read; it stays closed until a reload fixes them");
                if live.changed().await.is_err() {
                    return Ok(());
                }
                continue;
            }
        }
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(target: "dialtone::admin", %listen, error = %e, "cannot listen for the status page; trying again every 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    r = live.changed() => if r.is_err() { return Ok(()) },
                }
                continue;
            }
        };
        tracing::info!(target: "dialtone::admin", %listen, credentials = config.admin.needs_credentials(), "serving the status page, /metrics and /health");
        let router = router(Arc::clone(&app));
        let mut next = live.clone();
        let a = Arc::clone(&app);
        // Every reload reads the credentials' files again (a password set
        // with `dialtone passwd`, a new token); a file that no longer reads
        // keeps the credentials in force. A new address rebinds.
        let moved = async move {
            loop {
                if next.changed().await.is_err() {
                    return;
                }
                let c = Arc::clone(&next.borrow_and_update());
                if c.admin.listen != config.admin.listen {
                    return;
                }
                match Credentials::load(&c.admin) {
                    Ok(creds) => {
                        if let Ok(mut w) = a.credentials.write() {
                            *w = Arc::new(creds);
                        }
                    }
                    Err(e) => {
                        tracing::error!(target: "dialtone::admin", error = %e, "the admin listener's credentials cannot be read; the previous ones stay in force");
                    }
                }
            }
        };
        let served = axum::serve(
            listener::Bounded::new(listener),
            router.into_make_service_with_connect_info::<listener::Peer>(),
        )
        .with_graceful_shutdown(moved)
        .await;
        if let Err(e) = served {
            tracing::warn!(target: "dialtone::admin", %listen, error = %e, "the admin listener stopped");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/phones/{mac}", get(phone))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            guard,
        ))
        .with_state(app)
}

/// Credentials, before every route. (Requests at once per address are
/// bounded by the listener: `listener::PER_SOURCE` connections, one HTTP/1
/// request at a time on each.)
async fn guard(
    State(app): State<Arc<App>>,
    ConnectInfo(listener::Peer(peer)): ConnectInfo<listener::Peer>,
    req: Request,
    next: Next,
) -> Response {
    let ip = peer.ip();
    let credentials = app
        .credentials
        .read()
        .map(|c| Arc::clone(&c))
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // argon2 takes tens of milliseconds: off the runtime.
    let verdict = if credentials.required() {
        tokio::task::spawn_blocking(move || credentials.check(authorization.as_deref(), ip))
            .await
            .unwrap_or(Verdict::Refused)
    } else {
        Verdict::Allowed
    };
    match verdict {
        Verdict::Allowed => {}
        Verdict::Refused => {
            let mut r = (StatusCode::UNAUTHORIZED, "credentials required\n").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"dialtone\", charset=\"UTF-8\""),
            );
            return r;
        }
        Verdict::Slowed => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins from this address; wait a minute\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// `Server-Timing: made;dur=<ms>`: how long the server took to make the
/// answer (its content and its rendering), for `bench/site.sh`.
fn timed(mut r: Response, started: std::time::Instant) -> Response {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("made;dur={ms:.2}")) {
        r.headers_mut().insert("server-timing", v);
    }
    r
}

fn html(body: impl Into<axum::body::Body>) -> Response {
    let mut r = (StatusCode::OK, body.into()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self'",
        ),
    );
    r
}

fn failed(e: impl std::fmt::Display) -> Response {
    tracing::warn!(target: "dialtone::admin", error = %e, "a status page could not be made");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
}

async fn index(State(app): State<Arc<App>>, Query(filter): Query<Filter>) -> Response {
    let began = std::time::Instant::now();
    let key = format!(
        "page {:?} {} {} {:?}",
        filter.family, filter.stuck, filter.unknown, filter.q
    );
    let made = app
        .made_once(key, move |a| {
            let started = std::time::Instant::now();
            let page = crate::site::view::page(&a.site, filter, crate::now());
            let t = a.templates.get_template("page.html")?;
            t.render(minijinja::context! {
                page => minijinja::Value::from(minijinja::value::Serde(&page)),
                took_ms => started.elapsed().as_secs_f64() * 1000.0,
            })
        })
        .await;
    match made {
        Ok((fresh, body)) => {
            let r = html(body);
            if fresh { timed(r, began) } else { r }
        }
        Err(e) => failed(e),
    }
}

async fn phone(State(app): State<Arc<App>>, Path(mac): Path<String>) -> Response {
    let Ok(mac) = mac.parse::<crate::units::Mac>() else {
        return (StatusCode::BAD_REQUEST, "expected a MAC address\n").into_response();
    };
    let a = Arc::clone(&app);
    let made = tokio::task::spawn_blocking(move || {
        let Some(page) = crate::site::view::phone(&a.site, mac, crate::now()) else {
            return Ok(None);
        };
        let t = a.templates.get_template("phone.html")?;
        t.render(
            minijinja::context! { p => minijinja::Value::from(minijinja::value::Serde(&page)) },
        )
        .map(Some)
    })
    .await;
    match made {
        Ok(Ok(Some(body))) => html(body),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            "no such phone: not in the inventory and never seen\n",
        )
            .into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

/// OpenMetrics to a scraper that asks for it (Prometheus does), the
/// Prometheus text format to everyone else (curl, promtool).
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let began = std::time::Instant::now();
    let open = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let made = app
        .made_once(format!("metrics {open}"), move |a| {
            let text = crate::site::metrics::text(&a.site);
            Ok::<_, std::convert::Infallible>(if open {
                text
            } else {
                crate::site::metrics::prometheus_text(&text)
            })
        })
        .await;
    let kind = if open {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    match made {
        Ok((fresh, body)) => {
            let mut r = (StatusCode::OK, axum::body::Body::from(body)).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            if fresh { timed(r, began) } else { r }
        }
        Err(e) => failed(e),
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app.site.health().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}
