//! `POST /v1/dev/sign-in`: a token for a customer of the caller's choice, for trying the pages
//! when the platform runs embedded: only with `BACKEND=memory` and the public dev secret (the
//! embedded default, which anyone can mint with anyway); refused (403) on AWS, where tokens
//! come from the identity provider, and with a secret of the operator's own.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use quote_domain::types::CustomerId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::extract::ApiJson;
use quote_domain::request::FieldError;

use super::problem::ApiError;
use super::AppState;
use crate::auth::mint_hs256;

/// How long a dev token is valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the dev sign-in mints with (present only in embedded mode).
#[derive(Debug, Clone)]
pub struct DevSignIn {
    /// The HS256 secret the service verifies tokens with.
    pub secret: SecretString,
    /// The issuer the service requires, if any.
    pub issuer: Option<String>,
    /// The audience the service requires, if any.
    pub audience: Option<String>,
}

/// Who to sign in as.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The customer id the token acts for (its subject).
    #[schema(example = "cust-42", pattern = r"^[A-Za-z0-9._:@-]{1,128}$")]
    pub customer_id: String,
    /// Also grant the agent scope (any customer, the operations view).
    #[serde(default)]
    pub agent: bool,
}

/// A minted token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    /// The bearer token.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Mint a token for a customer (embedded mode only).
#[utoipa::path(
    post,
    path = "/v1/dev/sign-in",
    tag = "development",
    request_body = SignInRequest,
    responses(
        (status = 200, description = "A token for the customer", body = SignedIn),
        (status = 403, description = "Not running embedded (e.g. BACKEND=aws)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid customer id", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SignInRequest>,
) -> Result<Json<SignedIn>, ApiError> {
    let Some(dev) = &state.config.dev_sign_in else {
        return Err(ApiError::Forbidden(
            "the development sign-in works only when the platform runs embedded \
             (BACKEND=memory) with the public dev secret; sign in with a token from your \
             identity provider"
                .into(),
        ));
    };
    let customer = CustomerId::parse(&request.customer_id).map_err(|err| {
        ApiError::Validation(vec![FieldError {
            field: "customer_id".into(),
            reason: err.to_string(),
        }])
    })?;
    let token = mint_hs256(
        dev.secret.expose_secret(),
        customer.as_str(),
        request.agent,
        DEV_TOKEN_TTL,
        dev.issuer.as_deref(),
        dev.audience.as_deref(),
    )
    .map_err(|err| ApiError::Internal {
        what: "minting a dev token failed".into(),
        source: Some(Box::new(err)),
    })?;
    Ok(Json(SignedIn {
        token,
        token_type: "Bearer",
        expires_in: DEV_TOKEN_TTL.as_secs(),
    }))
}
