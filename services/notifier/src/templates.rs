//! Plain-text templates: the subject and body of each e-mail and the text of each SMS, per
//! outcome, filled with the quote id, the premium (formatted by `Money`'s `Display`, e.g.
//! `$1,234.56`), the offer's expiry date (UTC) and the reasons of a decline or referral.
//!
//! An SMS is one segment: at most [`SMS_MAX_CHARS`] characters, on one line; a text that
//! would be longer (long reasons) is cut and ends with `...`.

use quote_domain::quote::QuoteId;
use quote_domain::types::Money;
use time::{OffsetDateTime, UtcOffset};

/// Longest SMS text sent (one segment).
pub const SMS_MAX_CHARS: usize = 160;

/// What happened to the quote, as the templates need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteOutcome<'a> {
    /// Issued with this premium, valid until this instant.
    Issued {
        /// Annual premium.
        annual_premium: Money,
        /// When the offer expires.
        valid_until: OffsetDateTime,
    },
    /// Declined for these reasons.
    Declined {
        /// Why, as human sentences.
        reasons: &'a [String],
    },
    /// Referred to an underwriter for these reasons.
    Referred {
        /// Why, as human sentences.
        reasons: &'a [String],
    },
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    /// Subject line (one line).
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The offer's expiry as a calendar date in UTC, e.g. `2026-12-27`.
fn expiry_date(valid_until: OffsetDateTime) -> String {
    valid_until.to_offset(UtcOffset::UTC).date().to_string()
}

/// `- reason` lines, or a sentence saying none was given.
fn reason_lines(reasons: &[String]) -> String {
    let lines: Vec<String> = reasons
        .iter()
        .map(|r| one_line(r))
        .filter(|r| !r.is_empty())
        .map(|r| format!("  - {r}"))
        .collect();
    if lines.is_empty() {
        "  - (no reason was given)".to_owned()
    } else {
        lines.join("\n")
    }
}

/// The text on one line, runs of whitespace (newlines included) collapsed to one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

const SIGNATURE: &str =
    "-- \nThis message was sent because you asked to be notified about this quote.\n";

/// The e-mail for an outcome.
pub fn email(quote_id: QuoteId, outcome: &QuoteOutcome<'_>) -> EmailContent {
    match outcome {
        QuoteOutcome::Issued {
            annual_premium,
            valid_until,
        } => EmailContent {
            subject: format!("Your auto insurance quote {quote_id}: {annual_premium} a year"),
            body: format!(
                "Hello,\n\n\
                 Your auto insurance quote is ready.\n\n\
                 Annual premium: {annual_premium}\n\
                 Valid until:    {} (UTC)\n\
                 Quote id:       {quote_id}\n\n\
                 Quote the id above to accept the offer before it expires.\n\n\
                 {SIGNATURE}",
                expiry_date(*valid_until)
            ),
        },
        QuoteOutcome::Declined { reasons } => EmailContent {
            subject: format!("Your auto insurance quote {quote_id} was declined"),
            body: format!(
                "Hello,\n\n\
                 We are sorry: we cannot offer you a quote for this request.\n\n\
                 Reasons:\n{}\n\n\
                 Quote id: {quote_id}\n\n\
                 {SIGNATURE}",
                reason_lines(reasons)
            ),
        },
        QuoteOutcome::Referred { reasons } => EmailContent {
            subject: format!("Your auto insurance quote {quote_id} is being reviewed"),
            body: format!(
                "Hello,\n\n\
                 Your quote needs a review by one of our underwriters. We will write to you \
                 again when they have decided.\n\n\
                 Why it needs a review:\n{}\n\n\
                 Quote id: {quote_id}\n\n\
                 {SIGNATURE}",
                reason_lines(reasons)
            ),
        },
    }
}

/// The SMS text for an outcome (at most [`SMS_MAX_CHARS`] characters).
pub fn sms(quote_id: QuoteId, outcome: &QuoteOutcome<'_>) -> String {
    let text = match outcome {
        QuoteOutcome::Issued {
            annual_premium,
            valid_until,
        } => format!(
            "Your auto insurance quote {quote_id}: {annual_premium}/year, valid until {}.",
            expiry_date(*valid_until)
        ),
        QuoteOutcome::Declined { reasons } => {
            format!(
                "Your auto insurance quote {quote_id} was declined{}",
                reasons_suffix(reasons)
            )
        }
        QuoteOutcome::Referred { reasons } => format!(
            "Your auto insurance quote {quote_id} is being reviewed by an underwriter{}",
            reasons_suffix(reasons)
        ),
    };
    fit_sms(&text)
}

/// `: reason; reason.` or `.`.
fn reasons_suffix(reasons: &[String]) -> String {
    let joined: Vec<String> = reasons
        .iter()
        .map(|r| one_line(r))
        .filter(|r| !r.is_empty())
        .collect();
    if joined.is_empty() {
        ".".to_owned()
    } else {
        format!(": {}.", joined.join("; ").trim_end_matches('.'))
    }
}

/// One line of at most [`SMS_MAX_CHARS`] characters, cut with `...` when longer.
pub fn fit_sms(text: &str) -> String {
    let text = one_line(text);
    if text.chars().count() <= SMS_MAX_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(SMS_MAX_CHARS - 3).collect();
    cut.truncate(cut.trim_end().len());
    cut.push_str("...");
    cut
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn id() -> QuoteId {
        "0190f5a2-7b1c-7d3e-8f00-123456789abc".parse().unwrap()
    }

    fn issued(cents: u64) -> QuoteOutcome<'static> {
        QuoteOutcome::Issued {
            annual_premium: Money::from_cents(cents),
            valid_until: datetime!(2026-12-27 23:30 -05:00),
        }
    }

    #[test]
    fn issued_email_has_the_premium_the_utc_expiry_date_and_the_id() {
        let mail = email(id(), &issued(123_456));
        assert_eq!(
            mail.subject,
            "Your auto insurance quote 0190f5a2-7b1c-7d3e-8f00-123456789abc: $1,234.56 a year"
        );
        assert!(
            mail.body.contains("Annual premium: $1,234.56\n"),
            "{}",
            mail.body
        );
        // 23:30 at -05:00 is already the 28th in UTC.
        assert!(
            mail.body.contains("Valid until:    2026-12-28 (UTC)"),
            "{}",
            mail.body
        );
        assert!(mail
            .body
            .contains("Quote id:       0190f5a2-7b1c-7d3e-8f00-123456789abc"));
        assert!(!mail.subject.contains('\n'));
    }

    #[test]
    fn declined_and_referred_emails_list_the_reasons() {
        let reasons = vec![
            "driver VA T1: licence suspended".to_owned(),
            "  vehicle\n1HGCM82633A004352:  salvage title ".to_owned(),
        ];
        let mail = email(id(), &QuoteOutcome::Declined { reasons: &reasons });
        assert_eq!(
            mail.subject,
            "Your auto insurance quote 0190f5a2-7b1c-7d3e-8f00-123456789abc was declined"
        );
        assert!(mail.body.contains(
            "Reasons:\n  - driver VA T1: licence suspended\n  - vehicle 1HGCM82633A004352: salvage title\n"
        ), "{}", mail.body);

        let mail = email(id(), &QuoteOutcome::Referred { reasons: &reasons });
        assert!(mail.subject.ends_with("is being reviewed"));
        assert!(mail.body.contains("underwriters"));
        assert!(mail.body.contains("  - driver VA T1: licence suspended"));

        let none: Vec<String> = vec![" ".to_owned()];
        let mail = email(id(), &QuoteOutcome::Declined { reasons: &none });
        assert!(mail.body.contains("(no reason was given)"), "{}", mail.body);
    }

    #[test]
    fn sms_texts() {
        assert_eq!(
            sms(id(), &issued(180_000)),
            "Your auto insurance quote 0190f5a2-7b1c-7d3e-8f00-123456789abc: $1,800.00/year, valid until 2026-12-28."
        );
        let reasons = vec![
            "licence suspended.".to_owned(),
            "too many claims".to_owned(),
        ];
        assert_eq!(
            sms(id(), &QuoteOutcome::Declined { reasons: &reasons }),
            "Your auto insurance quote 0190f5a2-7b1c-7d3e-8f00-123456789abc was declined: licence suspended.; too many claims."
        );
        assert_eq!(
            sms(id(), &QuoteOutcome::Referred { reasons: &[] }),
            "Your auto insurance quote 0190f5a2-7b1c-7d3e-8f00-123456789abc is being reviewed by an underwriter."
        );
    }

    #[test]
    fn every_sms_fits_one_segment() {
        let long = vec!["x".repeat(500), "second\nline".to_owned()];
        for outcome in [
            issued(u64::MAX),
            QuoteOutcome::Declined { reasons: &long },
            QuoteOutcome::Referred { reasons: &long },
        ] {
            let text = sms(id(), &outcome);
            assert!(text.chars().count() <= SMS_MAX_CHARS, "{text}");
            assert!(!text.contains('\n'));
        }
        let cut = sms(id(), &QuoteOutcome::Declined { reasons: &long });
        assert_eq!(cut.chars().count(), SMS_MAX_CHARS);
        assert!(cut.ends_with("xxx..."), "{cut}");
    }

    #[test]
    fn fit_sms_counts_characters_not_bytes() {
        let text = "é".repeat(160);
        assert_eq!(fit_sms(&text), text);
        let cut = fit_sms(&"é".repeat(161));
        assert_eq!(cut.chars().count(), 160);
        assert!(cut.ends_with("é..."));
        // No space before the dots.
        let cut = fit_sms(&format!("{} {}", "x".repeat(156), "y".repeat(10)));
        assert_eq!(cut, format!("{}...", "x".repeat(156)));
    }
}
