//! How the console answers: pages from the embedded templates (minijinja, HTML auto-escaped),
//! refusals as a message the page shows, forms read within a size limit, and the embedded
//! assets (htmx and its SSE extension, uPlot, the console's own script and style).
use std::sync::OnceLock;

use axum::{
    body::{Body, Bytes},
    extract::Path,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// The largest form the console reads.
pub const FORM_LIMIT: usize = 64 << 10;

/// A rendered page or fragment and its status.
#[derive(Debug)]
pub struct Page {
    /// The status.
    pub status: StatusCode,
    /// The HTML.
    pub html: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (self.status, Html(self.html)).into_response()
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
    ("alert_rows.html", include_str!("templates/alert_rows.html")),
    ("alert.html", include_str!("templates/alert.html")),
    ("decisions.html", include_str!("templates/decisions.html")),
    ("decision_rows.html", include_str!("templates/decision_rows.html")),
    ("fleet.html", include_str!("templates/fleet.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("message.html", include_str!("templates/message.html")),
];

fn env() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = minijinja::Environment::new();
        for (name, text) in TEMPLATES {
            e.add_template(name, text).unwrap_or_else(|err| panic!("console template {name}: {err}"));
        }
        e.add_filter("datetime", |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        });
        e.add_filter("ago", |t: i64, now: i64| crate::console::view::ago(now - t));
        e.add_filter("left", |until: i64, now: i64| crate::console::view::ago(until - now));
        e
    })
}

/// `secs` as a short duration (`3m`, `2h 5m`, `4d`).
#[must_use]
pub fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Renders `name` with `ctx` (200).
pub fn render(name: &str, ctx: minijinja::Value) -> Page {
    match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Page { status: StatusCode::OK, html },
        Err(e) => {
            tracing::error!(template = name, error = %e, "console: rendering");
            Page {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                html: format!("<p class=\"error\">rendering {name} failed</p>"),
            }
        }
    }
}

/// A message for the page (`ok`: a confirmation, else an error) with `status`.
pub fn message(status: StatusCode, ok: bool, text: &str) -> Page {
    let mut p = render("message.html", minijinja::context! { ok => ok, text => text });
    p.status = status;
    p
}

/// A refusal with its reason.
pub fn refused(status: StatusCode, why: &str) -> Page {
    message(status, false, why)
}

/// A store or internal failure, as a message.
pub fn failed(e: impl std::fmt::Display) -> Page {
    tracing::warn!(error = %e, "console");
    refused(StatusCode::INTERNAL_SERVER_ERROR, &format!("the store failed: {e}"))
}

/// Reads a form body of at most [`FORM_LIMIT`] bytes.
///
/// # Errors
/// 413 past the limit, 400 when it does not read.
pub async fn body(b: Body) -> Result<Bytes, Page> {
    axum::body::to_bytes(b, FORM_LIMIT).await.map_err(|_| {
        refused(StatusCode::PAYLOAD_TOO_LARGE, &format!("the form is too large (at most {} KiB)", FORM_LIMIT >> 10))
    })
}

/// Parses a URL-encoded form.
///
/// # Errors
/// What does not read, as a message.
pub fn form<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, Page> {
    serde_urlencoded::from_bytes(b)
        .map_err(|e| refused(StatusCode::BAD_REQUEST, &format!("the form does not read: {e}")))
}

const ASSETS: &[(&str, &str, &[u8])] = &[
    ("htmx.min.js", "text/javascript", include_bytes!("assets/htmx.min.js")),
    ("sse.js", "text/javascript", include_bytes!("assets/sse.js")),
    ("uPlot.iife.min.js", "text/javascript", include_bytes!("assets/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css", include_bytes!("assets/uPlot.min.css")),
    ("console.js", "text/javascript", include_bytes!("assets/console.js")),
    ("console.css", "text/css", include_bytes!("assets/console.css")),
];

/// `GET /console/assets/{name}`: an embedded asset, cached by the browser for a day.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => (
            [(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, "public, max-age=86400")],
            Bytes::from_static(bytes),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_assets_are_there() {
        for (name, _) in TEMPLATES {
            assert!(env().get_template(name).is_ok(), "{name}");
        }
        for (name, _, bytes) in ASSETS {
            assert!(bytes.len() > 100, "{name} is empty");
        }
        assert_eq!(ago(59), "59s");
        assert_eq!(ago(3 * 3600 + 120), "3h 2m");
    }

    #[test]
    fn messages_escape_what_they_quote() {
        let p = refused(StatusCode::BAD_REQUEST, "bad <script>");
        assert!(p.html.contains("bad &lt;script&gt;"), "{}", p.html);
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
    }
}
