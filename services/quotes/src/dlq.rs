//! `quotes dlq`: a consumer application's dead letters — the records it set aside after
//! bounded permanent failures, and the later records of the same quote set aside behind them
//! (ADR 0008) — listed, shown, redriven through the application's handler, or purged.
//!
//! Redrive replays each quote's letters in their original order through the same handler the
//! service runs (built from the same settings, so a fix such as corrected rating tables
//! applies), removing each letter once it is handled; the first failure stops that quote (its
//! later letters keep waiting, in order). Handlers are idempotent, so a record a live worker
//! also handles changes nothing twice. Workers keep setting a quote's new records aside for up
//! to 10 s after its last letter is removed (their cached answer), so redrive looks again after
//! that long and replays what arrived meanwhile.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use event_store::EventEnvelope;
use kinesis_consumer::dead_letter::{DeadLetter, DeadLetterError, DeadLetterStore};
use quote_pipeline::{EventHandler, HandlerContext};
use quote_runtime::error_chain::chain;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// How long workers may keep a quote set aside after its last letter is removed.
pub const WORKER_ANSWER_TTL: Duration = Duration::from_secs(10);

/// Passes of a redrive at most (each after [`WORKER_ANSWER_TTL`]).
const MAX_PASSES: usize = 5;

/// Which letters: of one quote, of one kind, failed in a time window.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The quote's stream id (`quote#<uuid>`).
    pub stream_id: Option<String>,
    /// Failed themselves, or set aside behind another.
    pub kind: Option<Kind>,
    /// Failed at or after.
    pub since: Option<OffsetDateTime>,
    /// Failed before.
    pub until: Option<OffsetDateTime>,
}

/// Why a record is a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// It failed permanently itself.
    Failed,
    /// It was set aside behind an earlier letter of its quote, never tried.
    Blocked,
}

impl Filter {
    /// Whether `letter` is one of these.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.stream_id
            .as_ref()
            .is_none_or(|id| &letter.record.partition_key == id)
            && self.kind.is_none_or(|kind| kind == kind_of(letter))
            && self.since.is_none_or(|since| letter.failed_at >= since)
            && self.until.is_none_or(|until| letter.failed_at < until)
    }
}

fn kind_of(letter: &DeadLetter) -> Kind {
    if letter.blocked_behind.is_some() {
        Kind::Blocked
    } else {
        Kind::Failed
    }
}

/// A letter as `list` and `show` print it.
#[derive(Debug, Clone, Serialize)]
pub struct LetterView {
    /// The consumer application.
    pub application: String,
    /// The shard it was read from.
    pub shard_id: String,
    /// Its sequence number there.
    pub sequence_number: String,
    /// Its partition key: the quote's stream id.
    pub stream_id: String,
    /// Failed itself or set aside.
    pub kind: Kind,
    /// For a record set aside, the letter it waits behind.
    pub blocked_behind: Option<String>,
    /// The event's type, id and version, when the record is an event envelope.
    pub event_type: Option<String>,
    /// The event's id.
    pub event_id: Option<String>,
    /// The event's version in its stream.
    pub version: Option<u64>,
    /// Permanent failures before it was set aside (0 for a record set aside behind another).
    pub attempts: u32,
    /// When it was set aside (RFC 3339).
    pub failed_at: String,
    /// The last error, with its causes.
    pub error: String,
    /// The record's payload (`show` only): the envelope as JSON, or the bytes as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl LetterView {
    /// The view of `letter`; with its payload when `with_data`.
    pub fn of(letter: &DeadLetter, with_data: bool) -> Self {
        let envelope = serde_json::from_slice::<EventEnvelope>(&letter.record.data).ok();
        Self {
            application: letter.application.clone(),
            shard_id: letter.shard_id.clone(),
            sequence_number: letter.record.sequence_number.clone(),
            stream_id: letter.record.partition_key.clone(),
            kind: kind_of(letter),
            blocked_behind: letter.blocked_behind.clone(),
            event_type: envelope.as_ref().map(|e| e.event_type.clone()),
            event_id: envelope.as_ref().map(|e| e.event_id.to_string()),
            version: envelope.as_ref().map(|e| e.version),
            attempts: letter.attempts,
            failed_at: letter
                .failed_at
                .format(&Rfc3339)
                .unwrap_or_else(|_| "?".to_owned()),
            error: letter.error.clone(),
            data: with_data.then(|| {
                serde_json::from_slice(&letter.record.data).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&letter.record.data).into())
                })
            }),
        }
    }
}

/// The letters as an aligned table, one line each (or a line saying there are none).
pub fn render(letters: &[LetterView]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<27} {:<44} {:<22} {:>3} {:<7} {:<21} {:<12}  error",
        "failed at", "quote", "event", "v", "kind", "shard", "sequence"
    );
    for letter in letters {
        let sequence = &letter.sequence_number;
        let short = &sequence[sequence.len().saturating_sub(12)..];
        let error = match &letter.blocked_behind {
            Some(behind) => format!(
                "waits behind …{}",
                &behind[behind.len().saturating_sub(12)..]
            ),
            None => letter.error.chars().take(160).collect(),
        };
        let _ = writeln!(
            out,
            "{:<27} {:<44} {:<22} {:>3} {:<7} {:<21} …{:<11}  {}",
            letter.failed_at,
            letter.stream_id,
            letter.event_type.as_deref().unwrap_or("?"),
            letter.version.map(|v| v.to_string()).unwrap_or_default(),
            match letter.kind {
                Kind::Failed => "failed",
                Kind::Blocked => "blocked",
            },
            letter.shard_id,
            short,
            error
        );
    }
    out
}

/// The letters of `application` that `filter` picks, in replay order.
pub async fn select(
    store: &dyn DeadLetterStore,
    application: &str,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    Ok(store
        .letters(application)
        .await?
        .into_iter()
        .filter(|l| filter.matches(l))
        .collect())
}

/// What happened to one letter in a redrive.
#[derive(Debug, Clone, Serialize)]
pub struct Redriven {
    /// The letter.
    pub letter: LetterView,
    /// `handled` (and removed), `skipped` (its handler ignores the event type; removed),
    /// `failed` (kept, with `error`), `waiting` (kept: an earlier letter of its quote failed).
    pub outcome: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Replays the letters `filter` picks through `handler`, quote by quote in order, removing
/// each handled one; then, while quotes were released, waits [`WORKER_ANSWER_TTL`] and replays
/// what workers set aside meanwhile. `show` sees each outcome as it happens.
pub async fn redrive(
    store: &dyn DeadLetterStore,
    handler: Arc<dyn EventHandler>,
    context: &HandlerContext,
    filter: &Filter,
    show: &mut dyn FnMut(&Redriven),
) -> Result<Vec<Redriven>, DeadLetterError> {
    let application = handler.name();
    let mut report = Vec::new();
    let mut released: BTreeSet<String> = BTreeSet::new();
    for pass in 0..MAX_PASSES {
        let letters = select(store, application, filter).await?;
        let letters: Vec<DeadLetter> = if pass == 0 {
            letters
        } else {
            // Later passes: only what workers set aside behind the quotes just released.
            letters
                .into_iter()
                .filter(|l| released.contains(&l.record.partition_key))
                .collect()
        };
        if letters.is_empty() {
            break;
        }
        released.clear();
        let mut stopped: BTreeSet<String> = BTreeSet::new();
        for letter in letters {
            let key = letter.record.partition_key.clone();
            let outcome = if stopped.contains(&key) {
                Redriven {
                    letter: LetterView::of(&letter, false),
                    outcome: "waiting",
                    error: None,
                }
            } else {
                match replay(&letter, handler.as_ref(), context).await {
                    Ok(outcome) => {
                        store.remove(&letter).await?;
                        released.insert(key);
                        Redriven {
                            letter: LetterView::of(&letter, false),
                            outcome,
                            error: None,
                        }
                    }
                    Err(error) => {
                        stopped.insert(key.clone());
                        released.remove(&key);
                        Redriven {
                            letter: LetterView::of(&letter, false),
                            outcome: "failed",
                            error: Some(error),
                        }
                    }
                }
            };
            show(&outcome);
            report.push(outcome);
        }
        if released.is_empty() {
            break;
        }
        tokio::time::sleep(WORKER_ANSWER_TTL + Duration::from_secs(1)).await;
    }
    Ok(report)
}

/// Hands one letter's event to the handler: `Ok("handled")`, `Ok("skipped")` for an event type
/// it ignores, or the error (with its causes).
async fn replay(
    letter: &DeadLetter,
    handler: &dyn EventHandler,
    context: &HandlerContext,
) -> Result<&'static str, String> {
    let envelope: EventEnvelope = serde_json::from_slice(&letter.record.data)
        .map_err(|err| format!("not an event envelope: {err}"))?;
    if !handler.handles(&envelope.event_type) {
        return Ok("skipped");
    }
    handler
        .handle(&envelope, context)
        .await
        .map(|()| "handled")
        .map_err(|err| chain(&err).to_string())
}

/// Removes the letters `filter` picks; returns them.
pub async fn purge(
    store: &dyn DeadLetterStore,
    application: &str,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let letters = select(store, application, filter).await?;
    for letter in &letters {
        store.remove(letter).await?;
    }
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinesis_consumer::Record;

    fn letter(key: &str, sequence: &str, behind: Option<&str>, at: i64) -> DeadLetter {
        DeadLetter {
            application: "fulfillment".into(),
            shard_id: "shardId-000000000001".into(),
            record: Record {
                sequence_number: sequence.into(),
                sub_sequence_number: 0,
                partition_key: key.into(),
                data: b"not an envelope".to_vec(),
                approximate_arrival: None,
            },
            error: "cannot handle event: rating failed".into(),
            attempts: if behind.is_some() { 0 } else { 5 },
            failed_at: OffsetDateTime::from_unix_timestamp(at).expect("time"),
            blocked_behind: behind.map(str::to_owned),
        }
    }

    #[test]
    fn filters_combine() {
        let failed = letter("quote#1", "10", None, 100);
        let blocked = letter("quote#1", "11", Some("10"), 200);
        let other = letter("quote#2", "12", None, 300);
        let by_quote = Filter {
            stream_id: Some("quote#1".into()),
            ..Filter::default()
        };
        assert!(
            by_quote.matches(&failed) && by_quote.matches(&blocked) && !by_quote.matches(&other)
        );
        let blocked_only = Filter {
            kind: Some(Kind::Blocked),
            ..Filter::default()
        };
        assert!(!blocked_only.matches(&failed) && blocked_only.matches(&blocked));
        let window = Filter {
            since: OffsetDateTime::from_unix_timestamp(150).ok(),
            until: OffsetDateTime::from_unix_timestamp(300).ok(),
            ..Filter::default()
        };
        assert!(!window.matches(&failed) && window.matches(&blocked) && !window.matches(&other));
    }

    #[test]
    fn the_table_has_a_line_per_letter() {
        assert_eq!(render(&[]), "no dead letters\n");
        let text = render(&[
            LetterView::of(&letter("quote#1", "10", None, 100), false),
            LetterView::of(&letter("quote#1", "11", Some("10"), 200), false),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].contains("failed") && lines[1].contains("rating failed"),
            "{text}"
        );
        assert!(
            lines[2].contains("blocked") && lines[2].contains("waits behind"),
            "{text}"
        );
    }

    #[test]
    fn show_includes_the_payload() {
        let view = LetterView::of(&letter("quote#1", "10", None, 100), true);
        assert_eq!(
            view.data,
            Some(serde_json::Value::String("not an envelope".into()))
        );
        assert!(LetterView::of(&letter("quote#1", "10", None, 100), false)
            .data
            .is_none());
    }
}
