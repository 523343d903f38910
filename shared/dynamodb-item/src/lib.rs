//! One codec for DynamoDB items, shared by every DynamoDB adapter (event store, lease table,
//! read model, archive manifest, notification ledger, dead letters).
//!
//! - Writing: [`s`], [`n`], [`string_set`] build attribute values; an [`Item`] is a map of them.
//! - Reading: [`ItemExt`] reads an attribute as the type the adapter expects, with an
//!   [`AttributeError`] that names the attribute and keeps the parser's error as its source;
//!   absent and `NULL` attributes are the same "absent" for the optional reads.
//! - Conditional writes: [`ConditionalExt::condition_checked`] turns "the condition did not
//!   hold" into `Ok(None)`, so each adapter decides what that means (a lost lease, a stale
//!   upsert, a conflict) in one `match`; [`cancellation_reasons`] does the same for a
//!   transaction's per-item reasons, and [`is_table_missing`] tells a missing table apart.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::result::SdkError;
use serde::de::DeserializeOwned;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The error code of a single write whose condition did not hold.
pub const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailedException";

/// The cancellation reason of a transaction item whose condition did not hold.
pub const CONDITION_REASON: &str = "ConditionalCheckFailed";

/// A string attribute.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string-set attribute, sorted and without duplicates; `None` for an empty set, which
/// DynamoDB cannot store.
pub fn string_set(values: &[String]) -> Option<AttributeValue> {
    let unique: BTreeSet<&String> = values.iter().collect();
    if unique.is_empty() {
        None
    } else {
        Some(AttributeValue::Ss(unique.into_iter().cloned().collect()))
    }
}

/// Why an attribute could not be read.
#[derive(Debug, thiserror::Error)]
#[error("attribute {name}: {problem}")]
pub struct AttributeError {
    /// The attribute.
    pub name: String,
    /// What is wrong with it.
    pub problem: String,
    /// The parser's error, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AttributeError {
    fn new(name: &str, problem: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            problem: problem.into(),
            source: None,
        }
    }

    fn because(
        name: &str,
        problem: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.to_owned(),
            problem: problem.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// The type of a value, as an error names it.
fn kind(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "a string",
        AttributeValue::N(_) => "a number",
        AttributeValue::B(_) => "binary",
        AttributeValue::Bool(_) => "a boolean",
        AttributeValue::Ss(_) => "a string set",
        AttributeValue::Ns(_) => "a number set",
        AttributeValue::Bs(_) => "a binary set",
        AttributeValue::L(_) => "a list",
        AttributeValue::M(_) => "a map",
        AttributeValue::Null(_) => "null",
        _ => "of an unknown type",
    }
}

/// Typed reads of an item's attributes.
pub trait ItemExt {
    /// A string attribute, absent (or `NULL`) as `None`; any other type is an error.
    fn optional_string(&self, name: &str) -> Result<Option<&str>, AttributeError>;

    /// A number attribute parsed as `T`, absent (or `NULL`) as `None`.
    fn optional_number<T>(&self, name: &str) -> Result<Option<T>, AttributeError>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static;

    /// A string-set attribute, sorted and without duplicates; absent as empty.
    fn string_set(&self, name: &str) -> Result<Vec<String>, AttributeError>;

    /// A required string attribute.
    fn string(&self, name: &str) -> Result<&str, AttributeError> {
        self.optional_string(name)?
            .ok_or_else(|| AttributeError::new(name, "missing (a string)"))
    }

    /// A required number attribute parsed as `T`.
    fn number<T>(&self, name: &str) -> Result<T, AttributeError>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.optional_number(name)?
            .ok_or_else(|| AttributeError::new(name, "missing (a number)"))
    }

    /// A required string attribute holding JSON, decoded as `T`.
    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, AttributeError> {
        serde_json::from_str(self.string(name)?)
            .map_err(|e| AttributeError::because(name, "does not decode", e))
    }

    /// A required string attribute holding an RFC 3339 time.
    fn timestamp(&self, name: &str) -> Result<OffsetDateTime, AttributeError> {
        let text = self.string(name)?;
        OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| AttributeError::because(name, format!("{text:?} is not a time"), e))
    }
}

impl ItemExt for Item {
    fn optional_string(&self, name: &str) -> Result<Option<&str>, AttributeError> {
        match self.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value)),
            Some(other) => Err(AttributeError::new(
                name,
                format!("is {}, not a string", kind(other)),
            )),
        }
    }

    fn optional_number<T>(&self, name: &str) -> Result<Option<T>, AttributeError>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => value
                .parse()
                .map(Some)
                .map_err(|e| AttributeError::because(name, format!("{value} does not fit"), e)),
            Some(other) => Err(AttributeError::new(
                name,
                format!("is {}, not a number", kind(other)),
            )),
        }
    }

    fn string_set(&self, name: &str) -> Result<Vec<String>, AttributeError> {
        match self.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::Ss(values)) => {
                let mut values = values.clone();
                values.sort();
                values.dedup();
                Ok(values)
            }
            Some(other) => Err(AttributeError::new(
                name,
                format!("is {}, not a string set", kind(other)),
            )),
        }
    }
}

/// The outcome of a conditional write, with "the condition did not hold" as a value.
pub trait ConditionalExt<T, E, R> {
    /// `Ok(Some(output))` when written, `Ok(None)` when the write's condition did not hold,
    /// the error otherwise.
    fn condition_checked(self) -> Result<Option<T>, SdkError<E, R>>;
}

impl<T, E: ProvideErrorMetadata, R> ConditionalExt<T, E, R> for Result<T, SdkError<E, R>> {
    fn condition_checked(self) -> Result<Option<T>, SdkError<E, R>> {
        match self {
            Ok(output) => Ok(Some(output)),
            Err(SdkError::ServiceError(context))
                if context.err().code() == Some(CONDITIONAL_CHECK_FAILED) =>
            {
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }
}

/// The per-item cancellation reasons of a cancelled transaction (`Some(code)` for each item
/// that failed, in the request's order), or `None` when the transaction was not cancelled.
pub fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<Option<String>>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

/// True when a transaction was cancelled because a condition did not hold.
pub fn transaction_condition_failed<R>(err: &SdkError<TransactWriteItemsError, R>) -> bool {
    cancellation_reasons(err).is_some_and(|reasons| {
        reasons
            .iter()
            .any(|code| code.as_deref() == Some(CONDITION_REASON))
    })
}

/// True when the request named a table that does not exist.
pub fn is_table_missing(err: &impl ProvideErrorMetadata) -> bool {
    err.code() == Some("ResourceNotFoundException")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_the_attribute_and_keep_the_cause() {
        let item = Item::from([
            ("a".to_owned(), s("text")),
            ("b".to_owned(), n(42)),
            ("c".to_owned(), n(-1)),
            ("d".to_owned(), AttributeValue::Null(true)),
            ("e".to_owned(), s("{\"x\":1}")),
            ("f".to_owned(), s("2026-12-07T18:00:00Z")),
            (
                "g".to_owned(),
                AttributeValue::Ss(vec!["b".into(), "a".into(), "b".into()]),
            ),
        ]);
        assert_eq!(item.string("a").ok(), Some("text"));
        assert_eq!(item.number::<u64>("b").ok(), Some(42));
        assert_eq!(item.optional_string("d").ok(), Some(None));
        assert_eq!(item.optional_number::<u64>("missing").ok(), Some(None));
        assert_eq!(
            item.json::<serde_json::Value>("e").ok(),
            Some(serde_json::json!({"x": 1}))
        );
        assert!(item.timestamp("f").is_ok());
        assert_eq!(
            item.string_set("g").ok(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(item.string_set("missing").ok(), Some(Vec::new()));

        let negative = item.number::<u64>("c").expect_err("negative");
        assert_eq!(negative.name, "c");
        assert!(std::error::Error::source(&negative).is_some());
        let wrong = item.number::<u64>("a").expect_err("a string");
        assert_eq!(wrong.to_string(), "attribute a: is a string, not a number");
        let missing = item.string("missing").expect_err("missing");
        assert_eq!(missing.to_string(), "attribute missing: missing (a string)");
    }

    #[test]
    fn sets_are_written_sorted_and_empty_ones_not_at_all() {
        assert_eq!(string_set(&[]), None);
        assert_eq!(
            string_set(&["b".into(), "a".into(), "b".into()]),
            Some(AttributeValue::Ss(vec!["a".into(), "b".into()]))
        );
    }
}
