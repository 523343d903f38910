//! The web pages (`/`, `/docs`) and their assets (`/assets/…`), compiled into the binary from
//! `services/event-source/web/`: plain HTML, CSS and JavaScript, no build step, nothing fetched
//! from anywhere but this server. Each answer carries a strong `ETag` (a hash of the content,
//! so `If-None-Match` gets a 304), `Cache-Control: no-cache` (revalidated on every load, so a
//! new deployment is seen at once) and a content security policy that allows only this origin.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::problem::ApiError;

/// One compiled-in file.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", hex::encode(&digest[..12]));
        Self {
            name,
            content_type,
            body,
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
        }
    }
}

/// Every page and asset.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    vec![
        Asset::new(
            "index.html",
            "text/html; charset=utf-8",
            include_str!("../../web/index.html"),
        ),
        Asset::new(
            "docs.html",
            "text/html; charset=utf-8",
            include_str!("../../web/docs.html"),
        ),
        Asset::new(
            "dom.js",
            "text/javascript; charset=utf-8",
            include_str!("../../web/dom.js"),
        ),
        Asset::new(
            "app.js",
            "text/javascript; charset=utf-8",
            include_str!("../../web/app.js"),
        ),
        Asset::new(
            "docs.js",
            "text/javascript; charset=utf-8",
            include_str!("../../web/docs.js"),
        ),
        Asset::new(
            "app.css",
            "text/css; charset=utf-8",
            include_str!("../../web/app.css"),
        ),
    ]
});

/// Only this origin; no inline script or style; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return ApiError::NotFound("no such asset".into()).into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == asset.etag.to_str().unwrap_or_default())
        });
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::ETAG, asset.etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, asset.body).into_response()
    }
}

/// `/`: the pages (request a quote, my quotes, a quote, operations, sign-in).
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `/docs`: the interactive API reference, rendered from `/openapi.json`.
pub async fn docs(headers: HeaderMap) -> Response {
    serve("docs.html", &headers)
}

/// `/assets/{name}`: the scripts and the stylesheet.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if name.ends_with(".html") {
        return ApiError::NotFound("no such asset".into()).into_response();
    }
    serve(&name, &headers)
}

/// Bytes of every page and asset together (uncompressed), for the size budget.
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|asset| asset.body.len()).sum()
}
