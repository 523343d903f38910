//! `quotes relay-dead-letters`: the records the relays set aside because Kinesis can never
//! accept them, one line each, for an operator to act on (the events themselves are in the
//! event store: `stream_id` and `version` name them).

use std::fmt::Write;

use event_relay::dead_letter::{DeadLetterError, RelayDeadLetter, RelayDeadLetters};
use time::format_description::well_known::Rfc3339;

/// The entries of `letters` (at most `limit`) as text: a header line, one line per entry, or a
/// line saying there are none.
pub async fn show(letters: &dyn RelayDeadLetters, limit: usize) -> Result<String, DeadLetterError> {
    Ok(render(&letters.list(limit).await?))
}

/// Renders entries as an aligned table.
pub fn render(letters: &[RelayDeadLetter]) -> String {
    if letters.is_empty() {
        return "no relay dead letters\n".to_owned();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<27} {:<44} {:>7} {:<24} {:>9}  reason",
        "dead-lettered at", "stream", "version", "event type", "bytes"
    );
    for letter in letters {
        let at = letter
            .dead_lettered_at
            .format(&Rfc3339)
            .unwrap_or_else(|_| "?".to_owned());
        let _ = writeln!(
            out,
            "{:<27} {:<44} {:>7} {:<24} {:>9}  {} (event {})",
            at,
            letter.stream_id,
            letter.version,
            letter.event_type,
            letter.record_bytes,
            letter.reason,
            letter.event_id
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_entry_on_one_line() {
        assert_eq!(render(&[]), "no relay dead letters\n");
        let letter = RelayDeadLetter {
            stream_id: "quote#1".into(),
            version: 2,
            event_id: uuid::Uuid::nil(),
            event_type: "QuoteRequested".into(),
            record_bytes: 1_200_000,
            reason: "record of 1200000 bytes".into(),
            dead_lettered_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let text = render(&[letter]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("1970-01-01T00:00:00Z"), "{text}");
        assert!(lines[1].contains("quote#1") && lines[1].contains("1200000 bytes"));
    }
}
