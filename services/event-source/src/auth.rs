//! Bearer-token authentication: who is calling, and may they act for a customer.
//!
//! Tokens are JWTs signed with HS256 and a shared secret (`AUTH_HS256_SECRET`, local and tests)
//! or with an asymmetric key published as a JWKS (`AUTH_JWKS_URL`, production, e.g. Cognito).
//! `exp` is required and `nbf` checked when present (both with [`LEEWAY_SECS`] of clock skew);
//! `iss` and `aud` are checked when configured (always with a JWKS: the configuration refuses a
//! JWKS without both); `aud` may be a string or an array (RFC 7519 section 4.1.3). A token longer
//! than [`MAX_TOKEN_BYTES`] or with a subject longer than [`MAX_SUBJECT_BYTES`] is refused before
//! any work. `sub` is the customer id, compared exactly (never trimmed) with the normalised
//! customer id of a request; a token whose `scope` contains `quotes:agent` may act for any
//! customer; one whose `scope` contains `ops:read` (or `quotes:agent`) may read the operations
//! view (`GET /v1/ops`, `GET /v1/ops/stream`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    decode, decode_header, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::{AuthConfig, AuthKeys};
use quote_runtime::error_chain::chain;

/// The scope that lets a token act for any customer.
pub const AGENT_SCOPE: &str = "quotes:agent";

/// The scope that lets a token read the operations view (and nothing else of other customers).
pub const OPS_READ_SCOPE: &str = "ops:read";

/// Longest bearer token accepted (a Cognito access token is about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest subject accepted: it becomes the `actor` of events and part of idempotency keys.
pub const MAX_SUBJECT_BYTES: usize = 255;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject: the customer id (or the agent's id).
    pub subject: String,
    /// True when the token carries the agent scope.
    pub agent: bool,
    /// True when the token carries the `ops:read` scope.
    pub ops_reader: bool,
}

impl Principal {
    /// Whether the caller may read or write `customer_id`'s quotes.
    ///
    /// `customer_id` must already be normalised (a parsed
    /// [`CustomerId`](quote_domain::types::CustomerId), or an id read from the store): the
    /// subject is compared exactly, so a subject `"cust-42 "` never acts for `cust-42`.
    pub fn may_act_for(&self, customer_id: &str) -> bool {
        self.agent || self.subject == customer_id
    }

    /// Whether the caller may read the operations view (leases, lag, dead letters, outbox).
    pub fn may_read_operations(&self) -> bool {
        self.agent || self.ops_reader
    }
}

/// The `aud` claim: one audience or several (RFC 7519 section 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "quotes-api"`.
    One(String),
    /// `"aud": ["quotes-api", "other"]`.
    Many(Vec<String>),
}

/// The claims we read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the customer id.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: a string or an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// Why a token was refused (the detail is safe to show the caller).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// The token failed one of our checks.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token failed verification (its reason is what the caller is told).
    #[error("invalid token: {0}")]
    Rejected(#[source] jsonwebtoken::errors::Error),
    /// The key set could not be fetched.
    #[error("signing keys unavailable")]
    KeysUnavailable(#[source] reqwest::Error),
}

/// Asymmetric algorithms accepted from a JWKS (never HS*, to rule out algorithm confusion).
const JWKS_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// How long a fetched key set is trusted before it is fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// An unknown `kid` triggers a refetch at most this often.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct JwksCache {
    url: String,
    http: reqwest::Client,
    cached: RwLock<Option<(JwkSet, Instant)>>,
}

impl JwksCache {
    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let set = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(AuthError::KeysUnavailable)?
            .json::<JwkSet>()
            .await
            .map_err(AuthError::KeysUnavailable)?;
        *self.cached.write().await = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let (cached, age) = match &*self.cached.read().await {
            Some((set, at)) => (find(set), Some(at.elapsed())),
            None => (None, None),
        };
        let jwk = match (cached, age) {
            (Some(jwk), Some(age)) if age < JWKS_MAX_AGE => jwk,
            (None, Some(age)) if age < JWKS_MIN_REFRESH => {
                return Err(AuthError::Invalid("unknown signing key".into()))
            }
            _ => find(&self.fetch().await?)
                .ok_or_else(|| AuthError::Invalid("unknown signing key".into()))?,
        };
        DecodingKey::from_jwk(&jwk).map_err(AuthError::Rejected)
    }
}

enum Keys {
    /// The secret's key; `None` when the library refuses the secret (an empty one, which the
    /// settings never let through): every token is then refused.
    Hs256(Option<DecodingKey>),
    Jwks(JwksCache),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Hs256(_) => f.write_str("Hs256(<secret>)"),
            Keys::Jwks(cache) => f.debug_tuple("Jwks").field(&cache.url).finish(),
        }
    }
}

/// Verifies bearer tokens.
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: Arc<Keys>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    /// An authenticator for the configured keys.
    pub fn new(config: &AuthConfig) -> Self {
        let keys = match &config.keys {
            AuthKeys::Hs256Secret(secret) => {
                let key = DecodingKey::from_secret(secret.expose_secret().as_bytes());
                if let Err(err) = &key {
                    tracing::error!(error = %chain(err), "the HS256 secret is unusable: every token will be refused");
                }
                Keys::Hs256(key.ok())
            }
            AuthKeys::JwksUrl(url) => Keys::Jwks(JwksCache {
                url: url.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap_or_default(),
                cached: RwLock::new(None),
            }),
        };
        Self {
            keys: Arc::new(keys),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation
    }

    /// Verifies a token and returns the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "token longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = decode_header(token).map_err(AuthError::Rejected)?;
        let (key, algorithm) = match self.keys.as_ref() {
            Keys::Hs256(Some(key)) => (key.clone(), Algorithm::HS256),
            Keys::Hs256(None) => {
                return Err(AuthError::Invalid(
                    "the service's HS256 secret is unusable".to_owned(),
                ))
            }
            Keys::Jwks(cache) => {
                if !JWKS_ALGORITHMS.contains(&header.alg) {
                    return Err(AuthError::Invalid(format!(
                        "algorithm {:?} is not accepted",
                        header.alg
                    )));
                }
                (cache.key_for(header.kid.as_deref()).await?, header.alg)
            }
        };
        let data = decode::<Claims>(token, &key, &self.validation(algorithm))
            .map_err(AuthError::Rejected)?;
        let agent = data
            .claims
            .scope
            .as_deref()
            .is_some_and(|scope| scope.split_whitespace().any(|s| s == AGENT_SCOPE));
        let ops_reader = data
            .claims
            .scope
            .as_deref()
            .is_some_and(|scope| scope.split_whitespace().any(|s| s == OPS_READ_SCOPE));
        if data.claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject".into()));
        }
        if data.claims.sub.len() > MAX_SUBJECT_BYTES {
            return Err(AuthError::Invalid(format!(
                "subject longer than {MAX_SUBJECT_BYTES} bytes"
            )));
        }
        Ok(Principal {
            subject: data.claims.sub,
            agent,
            ops_reader,
        })
    }
}

/// Mints an HS256 token for local use and tests (`quotes token`).
pub fn mint_hs256(
    secret: &str,
    subject: &str,
    agent: bool,
    ttl: Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64 + ttl.as_secs();
    let claims = Claims {
        sub: subject.to_owned(),
        exp,
        scope: Some(if agent {
            format!("quotes:read quotes:write {AGENT_SCOPE}")
        } else {
            "quotes:read quotes:write".to_owned()
        }),
        iss: issuer.map(str::to_owned),
        aud: audience.map(|a| Audience::One(a.to_owned())),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes())?,
    )
}
