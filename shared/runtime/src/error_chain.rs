//! One line for an error and the causes behind it, for logs and dead letters.
//!
//! Our errors keep their cause as [`Error::source`] (thiserror's `#[source]`) instead of
//! flattening it into a string, so the cause stays inspectable. A log line that prints only the
//! outermost `Display` would then drop the reason — the AWS SDK's own `Display` is often just
//! "service error" — so logs write `error = %chain(&err)`: `outer: cause: root cause`.
//!
//! A cause whose text the line already holds is skipped: some errors (`#[error(transparent)]`,
//! or a message ending in `{0}`) display their source inline as well.

use std::error::Error;
use std::fmt;

/// `err` and its causes, `: `-separated, each once.
pub fn chain<'a>(err: &'a (dyn Error + 'static)) -> ErrorChain<'a> {
    ErrorChain(err)
}

/// Displays an error with its causes (see [`chain`]).
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !text.is_empty() && !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            next = cause.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("reading the lease table failed")]
        Quiet(#[source] Middle),
        #[error("lease table failed: {0}")]
        Inline(#[source] Middle),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("service error")]
    struct Middle(#[source] std::io::Error);

    fn root() -> std::io::Error {
        std::io::Error::other("ResourceNotFoundException: no such table")
    }

    #[test]
    fn every_cause_is_printed_once_in_order() {
        let quiet = Outer::Quiet(Middle(root()));
        assert_eq!(
            chain(&quiet).to_string(),
            "reading the lease table failed: service error: ResourceNotFoundException: no such table"
        );
        let inline = Outer::Inline(Middle(root()));
        assert_eq!(
            chain(&inline).to_string(),
            "lease table failed: service error: ResourceNotFoundException: no such table"
        );
    }

    #[test]
    fn an_error_without_a_source_is_its_message() {
        assert_eq!(chain(&root()).to_string(), root().to_string());
    }
}
