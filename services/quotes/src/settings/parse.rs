//! Value parsers shared by the settings: bounded names, secrets, positions.

use secrecy::SecretString;

/// A DynamoDB table or Kinesis stream name: 3–128 characters of `a-z A-Z 0-9 _ - .` (the
/// stricter of the two services' rules where they differ: tables allow 255, streams need 1),
/// so one parser fits both and an invalid name fails at start rather than at the first call.
pub fn resource_name(value: &str) -> Result<String, String> {
    aws_name(value, 3..=128)
}

/// A name of `length` characters of `a-z A-Z 0-9 _ - .`, as AWS spells resource names.
pub fn aws_name(value: &str, length: std::ops::RangeInclusive<usize>) -> Result<String, String> {
    if !length.contains(&value.len()) {
        return Err(format!(
            "{} characters: use {} to {}",
            value.len(),
            length.start(),
            length.end()
        ));
    }
    let valid = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err("use only letters, digits, `_`, `-` and `.`".to_owned());
    }
    Ok(value.to_owned())
}

/// One entry of `OPS_APPLICATIONS`: `application` (lease table `<application>-leases`) or
/// `application=lease-table`, both AWS resource names.
pub fn ops_application(value: &str) -> Result<event_source::config::OpsApplication, String> {
    let parsed: event_source::config::OpsApplication = value.parse()?;
    resource_name(&parsed.name).map_err(|e| format!("application {:?}: {e}", parsed.name))?;
    resource_name(&parsed.lease_table)
        .map_err(|e| format!("lease table {:?}: {e}", parsed.lease_table))?;
    Ok(parsed)
}

/// A secret: kept in a [`SecretString`], never printed (its argument hides its value in help).
pub fn secret(value: &str) -> Result<SecretString, String> {
    if value.is_empty() {
        return Err("empty".to_owned());
    }
    Ok(SecretString::from(value.to_owned()))
}

/// An HTTP(S) URL.
pub fn http_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| "expected an http:// or https:// URL".to_owned())?;
    if rest.is_empty() || rest.starts_with('/') || value.len() > 2048 {
        return Err("expected an http:// or https:// URL with a host".to_owned());
    }
    Ok(value.to_owned())
}

/// An RFC 3339 time (`2026-12-07T13:00:00Z`).
pub fn rfc3339(value: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|err| format!("{value:?} is not an RFC 3339 time: {err}"))
}

/// A filter in `RUST_LOG` syntax (`info`, `warn,kinesis_consumer=debug`, …).
pub fn log_filter(value: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_bounded_and_spelled_as_aws_allows() {
        assert!(resource_name("quote-events").is_ok());
        assert!(resource_name("stg-quote.events_2").is_ok());
        assert!(resource_name("ab").is_err());
        assert!(resource_name(&"a".repeat(129)).is_err());
        assert!(resource_name("quote events").is_err());
        assert!(resource_name("quote/events").is_err());
    }

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        assert!(http_url("https://vpic.nhtsa.dot.gov/api").is_ok());
        assert!(http_url("http://127.0.0.1:9/x").is_ok());
        assert!(http_url("vpic.nhtsa.dot.gov").is_err());
        assert!(http_url("https://").is_err());
        assert!(http_url("ftp://example.com").is_err());
    }

    #[test]
    fn log_filters_are_checked() {
        assert!(log_filter("info").is_ok());
        assert!(log_filter("warn,kinesis_consumer=debug").is_ok());
        assert!(log_filter("info,[").is_err());
    }
}
