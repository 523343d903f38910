//! The proxy's HTTP control endpoint, for scripts (on the proxy's own port; AWS JSON calls
//! always go to `/`, so the paths cannot clash):
//!
//! - `GET /__faults`: `{"rules": [{"id": 1, "rule": {…}}], "stats": {"forwarded": {…},
//!   "injected": {…}}}`
//! - `POST /__faults/rules`: a rule or a list of rules (JSON, as [`Rule`]) → `{"ids": [1]}`
//! - `DELETE /__faults/rules`: removes every rule
//! - `DELETE /__faults/rules/<id>`: removes one rule (404 when there is none)

use std::time::Instant;

use axum::body::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;

use super::{json_response, Rule, Shared};

/// The path prefix of the control endpoint.
pub(crate) const PREFIX: &str = "/__faults";

/// A rule or a list of rules.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Rules {
    One(Rule),
    Many(Vec<Rule>),
}

pub(crate) fn handle(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let path = parts.uri.path().trim_end_matches('/');
    let rules_path = format!("{PREFIX}/rules");
    let reply = |status: StatusCode, value: serde_json::Value| {
        json_response(status, None, value.to_string())
    };
    match (&parts.method, path) {
        (&Method::GET, p) if p == PREFIX => {
            let book = shared.book();
            let rules: Vec<serde_json::Value> = book
                .rules()
                .into_iter()
                .map(|(id, rule)| serde_json::json!({"id": id, "rule": rule}))
                .collect();
            reply(
                StatusCode::OK,
                serde_json::json!({"rules": rules, "stats": book.stats()}),
            )
        }
        (&Method::POST, p) if p == rules_path => match serde_json::from_slice::<Rules>(body) {
            Ok(rules) => {
                let rules = match rules {
                    Rules::One(rule) => vec![rule],
                    Rules::Many(rules) => rules,
                };
                let now = Instant::now();
                let mut book = shared.book();
                let ids: Vec<u64> = rules.into_iter().map(|r| book.add(r, now)).collect();
                reply(StatusCode::CREATED, serde_json::json!({ "ids": ids }))
            }
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"message": format!("not a rule: {e}")}),
            ),
        },
        (&Method::DELETE, p) if p == rules_path => {
            shared.book().clear();
            reply(StatusCode::OK, serde_json::json!({}))
        }
        (&Method::DELETE, p) if p.starts_with(&format!("{rules_path}/")) => {
            let removed = p[rules_path.len() + 1..]
                .parse::<u64>()
                .is_ok_and(|id| shared.book().remove(id));
            if removed {
                reply(StatusCode::OK, serde_json::json!({}))
            } else {
                reply(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"message": "no such rule"}),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"message": "GET /__faults, POST or DELETE /__faults/rules"}),
        ),
    }
}
