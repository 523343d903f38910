//! `quotes token`: mints an HS256 bearer token that event-source accepts, for local use,
//! scripts and the load generator.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::TokenSettings;

/// Default lifetime of a minted token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// event-source refuses tokens with an empty subject.
    #[error("the token subject (customer id) must not be empty")]
    EmptySubject,
    /// A token that expires immediately is useless.
    #[error("the token lifetime must be at least one second")]
    ZeroTtl,
    /// Signing failed.
    #[error("could not sign the token")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Mints a token for `subject`; `agent` adds the scope that may act for any customer.
pub fn mint(
    settings: &TokenSettings,
    subject: &str,
    agent: bool,
    ttl: Duration,
) -> Result<String, TokenError> {
    let subject = subject.trim();
    if subject.is_empty() {
        return Err(TokenError::EmptySubject);
    }
    if ttl.as_secs() == 0 {
        return Err(TokenError::ZeroTtl);
    }
    Ok(event_source::auth::mint_hs256(
        settings.secret.expose_secret(),
        subject,
        agent,
        ttl,
        settings.issuer.as_deref(),
        settings.audience.as_deref(),
    )?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use event_source::auth::Authenticator;
    use event_source::config::{AuthConfig, AuthKeys};

    fn settings() -> TokenSettings {
        TokenSettings {
            secret: secrecy::SecretString::from("a-test-secret-of-enough-bytes"),
            dev_secret: false,
            issuer: Some("quotes-test".into()),
            audience: Some("quotes".into()),
        }
    }

    #[tokio::test]
    async fn minted_tokens_are_accepted_with_issuer_and_audience() {
        let s = settings();
        let auth = Authenticator::new(&AuthConfig {
            keys: AuthKeys::Hs256Secret(s.secret.clone()),
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
        });
        let token = mint(&s, "cust-7", true, DEFAULT_TTL).unwrap();
        let principal = auth.verify(&token).await.unwrap();
        assert_eq!(principal.subject, "cust-7");
        assert!(principal.agent);
    }

    #[test]
    fn empty_subject_and_zero_ttl_are_refused() {
        assert!(matches!(
            mint(&settings(), "  ", false, DEFAULT_TTL),
            Err(TokenError::EmptySubject)
        ));
        assert!(matches!(
            mint(&settings(), "cust-1", false, Duration::ZERO),
            Err(TokenError::ZeroTtl)
        ));
    }
}
