//! The in-memory read model (embedded mode, fast tests).
//!
//! Indexed like the DynamoDB table: summaries by quote id (the table's key) and, per customer,
//! quote ids in order (the customer index), so that `get` is one lookup and a page of
//! `list_by_customer` reads only that page, newest first, whatever the number of quotes.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{
    decode_token, encode_token, ControlDocument, Page, PendingQuote, QuoteSummary, ReadModel,
    ReadModelError, Upsert, PENDING,
};

/// The summaries and the per-customer index, kept in step under one lock.
#[derive(Debug, Default)]
struct Index {
    /// Every summary, by quote id.
    by_id: HashMap<String, QuoteSummary>,
    /// Each customer's quote ids, ascending (UUIDv7: oldest first); read backwards.
    by_customer: HashMap<String, BTreeSet<String>>,
    /// Control documents by name.
    control: HashMap<String, ControlDocument>,
}

/// Summaries by quote id, with a per-customer index.
#[derive(Debug, Default)]
pub struct InMemoryReadModel {
    index: Mutex<Index>,
}

impl InMemoryReadModel {
    /// An empty read model.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ReadModel for InMemoryReadModel {
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError> {
        let mut index = self.lock();
        if let Some(stored) = index.by_id.get(&summary.quote_id) {
            if stored.version >= summary.version {
                return Ok(Upsert::Stale {
                    stored: stored.version,
                });
            }
            if stored.customer_id != summary.customer_id {
                let previous = stored.customer_id.clone();
                if let Some(ids) = index.by_customer.get_mut(&previous) {
                    ids.remove(&summary.quote_id);
                }
            }
        }
        index
            .by_customer
            .entry(summary.customer_id.clone())
            .or_default()
            .insert(summary.quote_id.clone());
        index
            .by_id
            .insert(summary.quote_id.clone(), summary.clone());
        Ok(Upsert::Applied)
    }

    async fn get(&self, quote_id: &str) -> Result<Option<QuoteSummary>, ReadModelError> {
        Ok(self.lock().by_id.get(quote_id).cloned())
    }

    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        page_token: Option<&str>,
    ) -> Result<Page, ReadModelError> {
        let after = page_token
            .map(|t| decode_token(customer_id, t))
            .transpose()?;
        let limit = limit.max(1);
        let index = self.lock();
        let Some(ids) = index.by_customer.get(customer_id) else {
            return Ok(Page {
                quotes: Vec::new(),
                next_page_token: None,
            });
        };
        let upper = match &after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        let mut newest_first = ids
            .range::<str, _>((Bound::Unbounded, upper))
            .rev()
            .filter_map(|id| index.by_id.get(id));
        let page: Vec<QuoteSummary> = newest_first.by_ref().take(limit).cloned().collect();
        let next_page_token = match newest_first.next() {
            Some(_) => page.last().map(|q| encode_token(customer_id, &q.quote_id)),
            None => None,
        };
        Ok(Page {
            quotes: page,
            next_page_token,
        })
    }

    async fn pending_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<PendingQuote>, ReadModelError> {
        let index = self.lock();
        let mut pending: Vec<PendingQuote> = index
            .by_id
            .values()
            .filter(|summary| summary.status == PENDING && summary.requested_at < before)
            .map(|summary| PendingQuote {
                customer_id: summary.customer_id.clone(),
                quote_id: summary.quote_id.clone(),
                requested_at: summary.requested_at,
            })
            .collect();
        pending.sort_by(|a, b| (a.requested_at, &a.quote_id).cmp(&(b.requested_at, &b.quote_id)));
        pending.truncate(limit.max(1));
        Ok(pending)
    }

    async fn read_control(&self, name: &str) -> Result<Option<ControlDocument>, ReadModelError> {
        Ok(self.lock().control.get(name).cloned())
    }

    async fn write_control(
        &self,
        name: &str,
        body: &str,
        expected: Option<u64>,
    ) -> Result<u64, ReadModelError> {
        let mut index = self.lock();
        let stored = index.control.get(name).map(|d| d.revision);
        if stored != expected {
            return Err(ReadModelError::Conflict {
                name: name.to_owned(),
            });
        }
        let revision = stored.unwrap_or(0) + 1;
        index.control.insert(
            name.to_owned(),
            ControlDocument {
                body: body.to_owned(),
                revision,
            },
        );
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::summary;

    #[tokio::test]
    async fn a_page_reads_only_the_customers_index() {
        let model = InMemoryReadModel::new();
        for n in 0..1000 {
            let customer = if n % 100 == 0 { "ana" } else { "bob" };
            model
                .upsert(&summary(customer, n, 1))
                .await
                .unwrap_or_else(|_| unreachable!());
        }
        let page = model
            .list_by_customer("ana", 3, None)
            .await
            .unwrap_or_else(|_| unreachable!());
        let ids: Vec<&str> = page.quotes.iter().map(|q| q.quote_id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                summary("ana", 900, 1).quote_id.as_str(),
                summary("ana", 800, 1).quote_id.as_str(),
                summary("ana", 700, 1).quote_id.as_str()
            ]
        );
        assert_eq!(model.lock().by_customer["ana"].len(), 10);
        assert_eq!(model.lock().by_id.len(), 1000);
    }
}
