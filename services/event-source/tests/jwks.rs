//! Tokens signed with an asymmetric key published as a JWKS (the production set-up, e.g.
//! Cognito), served here by a local HTTP server.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use event_relay::InMemorySink;
use event_source::auth::{Authenticator, Claims};
use event_source::config::{AuthConfig, AuthKeys};
use event_store::InMemoryEventStore;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const PRIVATE_KEY: &[u8] = include_bytes!("fixtures/jwks-test-key.pem");
const JWKS: &str = include_str!("fixtures/jwks.json");

async fn serve_jwks() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(|| async { ([("content-type", "application/json")], JWKS) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/.well-known/jwks.json")
}

fn claims(sub: &str, scope: Option<&str>) -> Claims {
    Claims {
        sub: sub.into(),
        exp: time::OffsetDateTime::now_utc().unix_timestamp() as u64 + 300,
        scope: scope.map(str::to_owned),
        iss: Some("https://cognito.test/pool".into()),
        aud: None,
    }
}

fn rs256(kid: &str, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(PRIVATE_KEY).expect("test key");
    jsonwebtoken::encode(&header, claims, &key).expect("token")
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_jwks() {
    let url = serve_jwks().await;
    let auth = Authenticator::new(&AuthConfig {
        keys: AuthKeys::JwksUrl(url),
        issuer: Some("https://cognito.test/pool".into()),
        audience: None,
    });
    let principal = auth
        .verify(&rs256("test-key-1", &claims("cust-42", None)))
        .await
        .expect("valid");
    assert_eq!(principal.subject, "cust-42");
    assert!(!principal.agent);
    let agent = auth
        .verify(&rs256(
            "test-key-1",
            &claims("agent-9", Some("openid quotes:agent")),
        ))
        .await
        .expect("valid");
    assert!(agent.agent);

    assert!(auth
        .verify(&rs256("unknown-kid", &claims("cust-42", None)))
        .await
        .is_err());
    // An HS256 token must never be accepted when keys come from a JWKS (algorithm confusion).
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("cust-42", None),
        &EncodingKey::from_secret(JWKS.as_bytes()).expect("an HMAC key"),
    )
    .expect("token");
    assert!(auth.verify(&hs).await.is_err());
    let mut other_issuer = claims("cust-42", None);
    other_issuer.iss = Some("https://evil.test".into());
    assert!(auth
        .verify(&rs256("test-key-1", &other_issuer))
        .await
        .is_err());
}

#[tokio::test]
async fn the_api_accepts_jwks_tokens() {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use tower::ServiceExt;

    let url = serve_jwks().await;
    let mut config = event_source::config::Config::for_memory("unused-secret-0123456789");
    config.auth = AuthConfig {
        keys: AuthKeys::JwksUrl(url),
        issuer: None,
        audience: None,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = event_source::Service::new(
        &config,
        Arc::new(InMemoryEventStore::new()),
        Arc::new(InMemorySink::new()),
        shutdown.clone(),
    );
    let router = event_source::api::router(service.state);
    let token = rs256("test-key-1", &claims("cust-42", None));
    let request = Request::get("/v1/quotes/0190d7a8-0000-7000-8000-000000000000")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = router.oneshot(request).await.expect("response");
    // Authenticated (the quote does not exist), not 401.
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(10)).await;
}
