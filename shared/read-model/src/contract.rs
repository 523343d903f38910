//! The contract both read-model adapters honour.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::model::{QuoteSummary, ReadModel, ReadModelError, Upsert};

/// Generates one test per contract case for the read model built by `$make`.
#[macro_export]
macro_rules! read_model_contract {
    ($make:expr) => {
        $crate::read_model_contract!(@cases $make;
            upserts_are_guarded_by_version,
            quotes_are_found_by_id,
            customers_list_newest_first_in_pages,
            pending_quotes_are_listed_oldest_first_until_decided,
            control_documents_are_written_on_their_revision,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let model: std::sync::Arc<dyn $crate::ReadModel> = $make.await;
                $crate::contract::$case(model).await;
            }
        )*
    };
}

/// A summary of quote `n` (UUIDv7-like ids that sort by `n`).
pub fn summary(customer: &str, n: u32, version: u64) -> QuoteSummary {
    let at = OffsetDateTime::from_unix_timestamp(1_790_000_000 + i64::from(n))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    QuoteSummary {
        customer_id: customer.to_owned(),
        quote_id: format!("019a0000-0000-7000-8000-{n:012}"),
        status: if version > 3 {
            "quoted".into()
        } else {
            "pending".into()
        },
        version,
        annual_premium_cents: (version > 3).then_some(123_456),
        valid_until: None,
        reasons: Vec::new(),
        vehicles: Vec::new(),
        drivers: 1,
        rating_table_version: None,
        requested_at: at,
        updated_at: at,
    }
}

fn unique_customer() -> String {
    format!("cust-{}", OffsetDateTime::now_utc().unix_timestamp_nanos())
}

/// A newer version replaces; the same or an older one does not.
pub async fn upserts_are_guarded_by_version(model: Arc<dyn ReadModel>) {
    let customer = unique_customer();
    assert_eq!(
        model
            .upsert(&summary(&customer, 1, 2))
            .await
            .expect("upsert"),
        Upsert::Applied
    );
    assert_eq!(
        model
            .upsert(&summary(&customer, 1, 4))
            .await
            .expect("upsert"),
        Upsert::Applied
    );
    assert_eq!(
        model
            .upsert(&summary(&customer, 1, 3))
            .await
            .expect("upsert"),
        Upsert::Stale { stored: 4 }
    );
    assert_eq!(
        model
            .upsert(&summary(&customer, 1, 4))
            .await
            .expect("upsert"),
        Upsert::Stale { stored: 4 }
    );
    let page = model
        .list_by_customer(&customer, 10, None)
        .await
        .expect("list");
    assert_eq!(page.quotes.len(), 1);
    assert_eq!(page.quotes[0].version, 4);
    assert_eq!(page.quotes[0].status, "quoted");
}

/// A quote is found by its id alone (eventually, for indexed adapters).
pub async fn quotes_are_found_by_id(model: Arc<dyn ReadModel>) {
    let customer = unique_customer();
    let stored = summary(&customer, 7, 1);
    model.upsert(&stored).await.expect("upsert");
    let mut found = None;
    for _ in 0..50 {
        found = model.get(&stored.quote_id).await.expect("get");
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found, Some(stored));
    assert!(model
        .get("019a0000-0000-7000-8000-999999999999")
        .await
        .expect("get")
        .is_none());
}

/// Listing is newest first, paged, and a token from another customer is refused.
pub async fn customers_list_newest_first_in_pages(model: Arc<dyn ReadModel>) {
    let customer = unique_customer();
    for n in 1..=7 {
        model
            .upsert(&summary(&customer, n, 1))
            .await
            .expect("upsert");
    }
    model
        .upsert(&summary(&unique_customer(), 99, 1))
        .await
        .expect("other customer");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let page = model
            .list_by_customer(&customer, 3, token.as_deref())
            .await
            .expect("list");
        assert!(page.quotes.len() <= 3);
        seen.extend(page.quotes.iter().map(|q| q.quote_id.clone()));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (1..=7)
        .rev()
        .map(|n| summary(&customer, n, 1).quote_id)
        .collect();
    assert_eq!(seen, expected);
    let first = model
        .list_by_customer(&customer, 3, None)
        .await
        .expect("list");
    let foreign = model
        .list_by_customer("someone-else", 3, first.next_page_token.as_deref())
        .await;
    assert!(matches!(foreign, Err(ReadModelError::InvalidPageToken)));
}

/// The quotes still pending, requested before an instant, oldest first; a decided quote leaves
/// the list (eventually, for indexed adapters).
pub async fn pending_quotes_are_listed_oldest_first_until_decided(model: Arc<dyn ReadModel>) {
    let customer = unique_customer();
    let ours = |pending: &[crate::model::PendingQuote]| -> Vec<String> {
        pending
            .iter()
            .filter(|p| p.customer_id == customer)
            .map(|p| p.quote_id.clone())
            .collect()
    };
    // Quotes 3, 1, 2 (requested in that order of n: 1 earliest), all pending; quote 4 decided.
    for n in [3, 1, 2] {
        model
            .upsert(&summary(&customer, n, 1))
            .await
            .expect("upsert");
    }
    model
        .upsert(&summary(&customer, 4, 5))
        .await
        .expect("upsert");
    let first = summary(&customer, 1, 1);
    let third = summary(&customer, 3, 1);
    let before_third = third.requested_at;

    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = ours(
            &model
                .pending_before(before_third, 1_000)
                .await
                .expect("pending"),
        );
        if listed.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        listed,
        vec![first.quote_id.clone(), summary(&customer, 2, 1).quote_id],
        "pending and requested before quote 3, oldest first"
    );
    let requested_at = model
        .pending_before(before_third, 1_000)
        .await
        .expect("pending")
        .into_iter()
        .find(|p| p.quote_id == first.quote_id && p.customer_id == customer)
        .map(|p| p.requested_at);
    assert_eq!(requested_at, Some(first.requested_at));

    // Quote 1 is decided: it leaves the list.
    model
        .upsert(&summary(&customer, 1, 5))
        .await
        .expect("decide");
    for _ in 0..50 {
        listed = ours(
            &model
                .pending_before(before_third, 1_000)
                .await
                .expect("pending"),
        );
        if listed.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed, vec![summary(&customer, 2, 1).quote_id]);
}

/// A control document is created once, then changed only on the revision read; it is never
/// listed, found or counted as a quote.
pub async fn control_documents_are_written_on_their_revision(model: Arc<dyn ReadModel>) {
    let name = format!("doc-{}", OffsetDateTime::now_utc().unix_timestamp_nanos());
    assert_eq!(model.read_control(&name).await.expect("read"), None);
    assert_eq!(
        model
            .write_control(&name, "{\"a\":1}", None)
            .await
            .expect("create"),
        1
    );
    assert!(matches!(
        model.write_control(&name, "{}", None).await,
        Err(ReadModelError::Conflict { .. })
    ));
    assert_eq!(
        model
            .write_control(&name, "{\"a\":2}", Some(1))
            .await
            .expect("update"),
        2
    );
    assert!(matches!(
        model.write_control(&name, "{}", Some(1)).await,
        Err(ReadModelError::Conflict { .. })
    ));
    let stored = model
        .read_control(&name)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!((stored.body.as_str(), stored.revision), ("{\"a\":2}", 2));
    assert_eq!(model.get(&name).await.expect("get"), None);
    let pending = model
        .pending_before(OffsetDateTime::now_utc() + time::Duration::days(1), 1_000)
        .await
        .expect("pending");
    assert!(pending.iter().all(|p| p.quote_id != name));
}
