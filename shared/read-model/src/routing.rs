//! Which read-model table is live, and which are kept in step beside it: the blue/green switch
//! of a rebuilt read model without a restart (ADR 0011).
//!
//! The routing is a control document (`routing`) in the *home* table, the one
//! `READ_MODEL_TABLE` names: `active` is the table the API reads, `standby` the tables the
//! projector writes as well (a table being rebuilt, or the previous one kept for a switch
//! back). Without the document the home table is active and nothing is standby.
//!
//! [`RoutedReadModel`] is a read model that follows the routing through a short cache
//! (`READ_MODEL_ROUTING_SECS`): reads go to the active table, upserts to the active table and
//! then to every standby one (each guarded by version, so a retry after a partial failure
//! changes nothing). A standby table that no longer exists is skipped with a warning, so a
//! table deleted before it was retired never stalls the live projection. Changes go through
//! [`RoutingControl`], conditional on the document's revision.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{
    ControlDocument, Page, PendingQuote, QuoteSummary, ReadModel, ReadModelError, Upsert,
};

/// The name of the routing document in the home table.
pub const ROUTING_DOCUMENT: &str = "routing";

/// How many times a routing change is retried after another writer came first.
const CHANGE_ATTEMPTS: usize = 10;

/// Which table is live and which are kept in step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// The table the API reads (and the projector writes first).
    pub active: String,
    /// Tables the projector also writes.
    #[serde(default)]
    pub standby: Vec<String>,
}

impl Routing {
    /// The routing without a document: the home table alone.
    pub fn home(table: &str) -> Self {
        Self {
            active: table.to_owned(),
            standby: Vec::new(),
        }
    }

    /// Every table written: the active one, then the standby ones.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.active.as_str()).chain(self.standby.iter().map(String::as_str))
    }

    /// Adds `table` as standby unless it is already written; true when added.
    pub fn add_standby(&mut self, table: &str) -> bool {
        if self.tables().any(|t| t == table) {
            return false;
        }
        self.standby.push(table.to_owned());
        true
    }

    /// Makes `table` active; the previously active table becomes standby (so a switch back
    /// needs no rebuild). False when it already was active.
    pub fn switch_to(&mut self, table: &str) -> bool {
        if self.active == table {
            return false;
        }
        self.standby.retain(|t| t != table);
        let previous = std::mem::replace(&mut self.active, table.to_owned());
        self.standby.push(previous);
        true
    }

    /// Stops writing the standby `table`; false when it was not standby.
    pub fn retire(&mut self, table: &str) -> bool {
        let before = self.standby.len();
        self.standby.retain(|t| t != table);
        self.standby.len() != before
    }
}

/// Reads and changes the routing document of a home table.
#[derive(Debug, Clone)]
pub struct RoutingControl {
    home: Arc<dyn ReadModel>,
    home_table: String,
}

impl RoutingControl {
    /// The routing kept in `home`, the read model on `home_table`.
    pub fn new(home: Arc<dyn ReadModel>, home_table: impl Into<String>) -> Self {
        Self {
            home,
            home_table: home_table.into(),
        }
    }

    /// The home table's name.
    pub fn home_table(&self) -> &str {
        &self.home_table
    }

    /// The routing and the revision of its document (`None`: never written, the home table
    /// alone).
    pub async fn load(&self) -> Result<(Routing, Option<u64>), ReadModelError> {
        match self.home.read_control(ROUTING_DOCUMENT).await? {
            None => Ok((Routing::home(&self.home_table), None)),
            Some(ControlDocument { body, revision }) => {
                let routing =
                    serde_json::from_str(&body).map_err(|source| ReadModelError::Corrupt {
                        what: "routing document",
                        source: Some(Box::new(source)),
                    })?;
                Ok((routing, Some(revision)))
            }
        }
    }

    /// Applies `change` to the stored routing and writes it when `change` returns true,
    /// retrying on a concurrent change; returns the routing as stored afterwards and whether
    /// it changed.
    pub async fn change(
        &self,
        change: impl Fn(&mut Routing) -> bool,
    ) -> Result<(Routing, bool), ReadModelError> {
        for _ in 0..CHANGE_ATTEMPTS {
            let (mut routing, revision) = self.load().await?;
            if !change(&mut routing) {
                return Ok((routing, false));
            }
            let body =
                serde_json::to_string(&routing).map_err(|source| ReadModelError::Corrupt {
                    what: "routing document does not encode",
                    source: Some(Box::new(source)),
                })?;
            match self
                .home
                .write_control(ROUTING_DOCUMENT, &body, revision)
                .await
            {
                Ok(_) => return Ok((routing, true)),
                Err(ReadModelError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(ReadModelError::Conflict {
            name: ROUTING_DOCUMENT.to_owned(),
        })
    }
}

/// Opens the read model on a table by name.
pub type OpenTable = Arc<dyn Fn(&str) -> Arc<dyn ReadModel> + Send + Sync>;

/// The routing as resolved to read models, with when it was loaded.
struct Resolved {
    loaded: Instant,
    routing: Routing,
    active: Arc<dyn ReadModel>,
    standby: Vec<Arc<dyn ReadModel>>,
}

/// A read model that follows the routing: reads the active table, writes every table.
pub struct RoutedReadModel {
    control: RoutingControl,
    open: OpenTable,
    ttl: Duration,
    cache: Mutex<Option<Arc<Resolved>>>,
}

impl std::fmt::Debug for RoutedReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedReadModel")
            .field("home_table", &self.control.home_table)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RoutedReadModel {
    /// A read model routed by the document in `home_table`, re-read every `ttl`; `open` opens
    /// a table by name (the home table included).
    pub fn new(home_table: &str, open: OpenTable, ttl: Duration) -> Self {
        let home = open(home_table);
        Self {
            control: RoutingControl::new(home, home_table),
            open,
            ttl,
            cache: Mutex::new(None),
        }
    }

    /// The routing in force (as cached).
    pub async fn routing(&self) -> Result<Routing, ReadModelError> {
        Ok(self.resolve().await?.routing.clone())
    }

    fn cached(&self) -> Option<Arc<Resolved>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn store(&self, resolved: Arc<Resolved>) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(resolved);
    }

    /// The routing, re-read once the cached one is older than the TTL. When re-reading fails
    /// the cached routing is kept (and re-read on the next call): a read-model outage must not
    /// also move readers to another table.
    async fn resolve(&self) -> Result<Arc<Resolved>, ReadModelError> {
        let cached = self.cached();
        if let Some(cached) = &cached {
            if cached.loaded.elapsed() < self.ttl {
                return Ok(cached.clone());
            }
        }
        match self.control.load().await {
            Ok((routing, _)) => {
                if let Some(cached) = cached.filter(|c| c.routing == routing) {
                    let resolved = Arc::new(Resolved {
                        loaded: Instant::now(),
                        routing,
                        active: cached.active.clone(),
                        standby: cached.standby.clone(),
                    });
                    self.store(resolved.clone());
                    return Ok(resolved);
                }
                tracing::info!(active = %routing.active, standby = ?routing.standby, "read-model routing");
                let resolved = Arc::new(Resolved {
                    loaded: Instant::now(),
                    active: (self.open)(&routing.active),
                    standby: routing.standby.iter().map(|t| (self.open)(t)).collect(),
                    routing,
                });
                self.store(resolved.clone());
                Ok(resolved)
            }
            Err(err) => match cached {
                Some(cached) => {
                    tracing::warn!(error = %err, "reading the read-model routing failed; keeping the routing in force");
                    Ok(cached)
                }
                None => Err(err),
            },
        }
    }
}

#[async_trait]
impl ReadModel for RoutedReadModel {
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError> {
        let resolved = self.resolve().await?;
        let outcome = resolved.active.upsert(summary).await?;
        for (table, model) in resolved.routing.standby.iter().zip(&resolved.standby) {
            match model.upsert(summary).await {
                Ok(_) => {}
                Err(ReadModelError::TableMissing { .. }) => {
                    tracing::warn!(table, "standby read-model table is gone; retire it with `quotes read-model retire`");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(outcome)
    }

    async fn get(&self, quote_id: &str) -> Result<Option<QuoteSummary>, ReadModelError> {
        self.resolve().await?.active.get(quote_id).await
    }

    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        page_token: Option<&str>,
    ) -> Result<Page, ReadModelError> {
        self.resolve()
            .await?
            .active
            .list_by_customer(customer_id, limit, page_token)
            .await
    }

    async fn pending_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<PendingQuote>, ReadModelError> {
        self.resolve()
            .await?
            .active
            .pending_before(before, limit)
            .await
    }

    async fn read_control(&self, name: &str) -> Result<Option<ControlDocument>, ReadModelError> {
        self.control.home.read_control(name).await
    }

    async fn write_control(
        &self,
        name: &str,
        body: &str,
        expected: Option<u64>,
    ) -> Result<u64, ReadModelError> {
        self.control.home.write_control(name, body, expected).await
    }

    async fn ping(&self) -> Result<(), ReadModelError> {
        self.resolve().await?.active.ping().await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::contract::summary;
    use crate::InMemoryReadModel;

    fn tables(names: &[&str]) -> (OpenTable, HashMap<String, Arc<InMemoryReadModel>>) {
        let models: HashMap<String, Arc<InMemoryReadModel>> = names
            .iter()
            .map(|n| ((*n).to_owned(), Arc::new(InMemoryReadModel::new())))
            .collect();
        let opened = models.clone();
        let open: OpenTable = Arc::new(move |table: &str| -> Arc<dyn ReadModel> {
            match opened.get(table) {
                Some(model) => model.clone(),
                None => Arc::new(Missing(table.to_owned())),
            }
        });
        (open, models)
    }

    /// A table that does not exist.
    #[derive(Debug)]
    struct Missing(String);

    #[async_trait]
    impl ReadModel for Missing {
        async fn upsert(&self, _: &QuoteSummary) -> Result<Upsert, ReadModelError> {
            Err(self.missing())
        }
        async fn get(&self, _: &str) -> Result<Option<QuoteSummary>, ReadModelError> {
            Err(self.missing())
        }
        async fn list_by_customer(
            &self,
            _: &str,
            _: usize,
            _: Option<&str>,
        ) -> Result<Page, ReadModelError> {
            Err(self.missing())
        }
        async fn pending_before(
            &self,
            _: OffsetDateTime,
            _: usize,
        ) -> Result<Vec<PendingQuote>, ReadModelError> {
            Err(self.missing())
        }
        async fn read_control(&self, _: &str) -> Result<Option<ControlDocument>, ReadModelError> {
            Err(self.missing())
        }
        async fn write_control(
            &self,
            _: &str,
            _: &str,
            _: Option<u64>,
        ) -> Result<u64, ReadModelError> {
            Err(self.missing())
        }
    }

    impl Missing {
        fn missing(&self) -> ReadModelError {
            ReadModelError::TableMissing {
                table: self.0.clone(),
            }
        }
    }

    #[tokio::test]
    async fn without_a_document_the_home_table_is_live() {
        let (open, models) = tables(&["home"]);
        let routed = RoutedReadModel::new("home", open, Duration::ZERO);
        routed.upsert(&summary("ana", 1, 1)).await.expect("upsert");
        assert!(models["home"]
            .get(&summary("ana", 1, 1).quote_id)
            .await
            .expect("get")
            .is_some());
        assert_eq!(
            routed.routing().await.expect("routing"),
            Routing::home("home")
        );
    }

    #[tokio::test]
    async fn standby_tables_are_written_and_a_switch_moves_reads() {
        let (open, models) = tables(&["home", "green"]);
        let routed = RoutedReadModel::new("home", open.clone(), Duration::ZERO);
        let control = RoutingControl::new(open("home"), "home");
        let (_, changed) = control
            .change(|r| r.add_standby("green"))
            .await
            .expect("add");
        assert!(changed);
        routed.upsert(&summary("ana", 1, 2)).await.expect("upsert");
        let id = summary("ana", 1, 2).quote_id;
        assert_eq!(
            models["green"]
                .get(&id)
                .await
                .expect("get")
                .map(|s| s.version),
            Some(2)
        );

        // Only green has quote 2: reads show it once green is active.
        models["green"]
            .upsert(&summary("ana", 2, 1))
            .await
            .expect("upsert");
        let page = routed
            .list_by_customer("ana", 10, None)
            .await
            .expect("list");
        assert_eq!(page.quotes.len(), 1);
        let (routing, _) = control
            .change(|r| r.switch_to("green"))
            .await
            .expect("switch");
        assert_eq!(routing.standby, vec!["home".to_owned()]);
        let page = routed
            .list_by_customer("ana", 10, None)
            .await
            .expect("list");
        assert_eq!(page.quotes.len(), 2);
        // The previous table is still written, so switching back needs no rebuild.
        routed.upsert(&summary("ana", 1, 3)).await.expect("upsert");
        assert_eq!(
            models["home"]
                .get(&id)
                .await
                .expect("get")
                .map(|s| s.version),
            Some(3)
        );
    }

    #[tokio::test]
    async fn a_missing_standby_table_never_blocks_the_live_one() {
        let (open, models) = tables(&["home"]);
        let routed = RoutedReadModel::new("home", open.clone(), Duration::ZERO);
        RoutingControl::new(open("home"), "home")
            .change(|r| r.add_standby("deleted"))
            .await
            .expect("add");
        assert_eq!(
            routed.upsert(&summary("ana", 1, 1)).await.expect("upsert"),
            Upsert::Applied
        );
        assert!(models["home"]
            .get(&summary("ana", 1, 1).quote_id)
            .await
            .expect("get")
            .is_some());
    }

    #[tokio::test]
    async fn the_cached_routing_holds_until_its_ttl() {
        let (open, _models) = tables(&["home", "green"]);
        let routed = RoutedReadModel::new("home", open.clone(), Duration::from_secs(3600));
        assert_eq!(routed.routing().await.expect("routing").active, "home");
        RoutingControl::new(open("home"), "home")
            .change(|r| r.switch_to("green"))
            .await
            .expect("switch");
        assert_eq!(routed.routing().await.expect("routing").active, "home");
    }

    #[tokio::test]
    async fn concurrent_changes_are_all_kept() {
        let (open, _models) = tables(&["home"]);
        let control = RoutingControl::new(open("home"), "home");
        let adds = (0..8).map(|n| {
            let control = control.clone();
            async move { control.change(|r| r.add_standby(&format!("t{n}"))).await }
        });
        for result in futures::future::join_all(adds).await {
            result.expect("change");
        }
        let (routing, revision) = control.load().await.expect("load");
        assert_eq!(routing.standby.len(), 8);
        assert_eq!(revision, Some(8));
    }
}
