//! The in-memory read model (embedded mode, fast tests).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::{
    decode_token, encode_token, Page, QuoteSummary, ReadModel, ReadModelError, Upsert,
};

/// Summaries keyed by (customer id, quote id).
#[derive(Debug, Default)]
pub struct InMemoryReadModel {
    quotes: Mutex<BTreeMap<(String, String), QuoteSummary>>,
}

impl InMemoryReadModel {
    /// An empty read model.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), QuoteSummary>> {
        self.quotes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ReadModel for InMemoryReadModel {
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError> {
        let mut quotes = self.lock();
        let key = (summary.customer_id.clone(), summary.quote_id.clone());
        if let Some(stored) = quotes.get(&key) {
            if stored.version >= summary.version {
                return Ok(Upsert::Stale {
                    stored: stored.version,
                });
            }
        }
        quotes.insert(key, summary.clone());
        Ok(Upsert::Applied)
    }

    async fn get(&self, quote_id: &str) -> Result<Option<QuoteSummary>, ReadModelError> {
        Ok(self
            .lock()
            .values()
            .find(|q| q.quote_id == quote_id)
            .cloned())
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
        let quotes = self.lock();
        let mut mine: Vec<&QuoteSummary> = quotes
            .values()
            .filter(|q| q.customer_id == customer_id)
            .filter(|q| after.as_ref().is_none_or(|a| q.quote_id < *a))
            .collect();
        mine.sort_by(|a, b| b.quote_id.cmp(&a.quote_id));
        let limit = limit.max(1);
        let more = mine.len() > limit;
        let page: Vec<QuoteSummary> = mine.into_iter().take(limit).cloned().collect();
        let next_page_token = if more {
            page.last().map(|q| encode_token(customer_id, &q.quote_id))
        } else {
            None
        };
        Ok(Page {
            quotes: page,
            next_page_token,
        })
    }
}
