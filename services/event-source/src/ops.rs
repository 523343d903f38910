//! The operations view (`GET /v1/ops`, `GET /v1/ops/stream`, the operations page): per consumer
//! application its shards, their owners, `MillisBehindLatest` and records since the last
//! checkpoint, its dead letters; and the outbox's backlog and the relay's dead letters.
//!
//! Everything is read from the shared tables, never from a process's own metrics, so any
//! replica shows the whole fleet: the lease tables (each owner writes its progress with every
//! renewal, [`kinesis_consumer::ShardProgress`]), the consumer dead-letter table, the event
//! store's outbox and the relay's dead letters. One [`OpsMonitor`] per process reads them once a
//! second while at least one stream is open (dead letters every [`DEAD_LETTER_EVERY`] reads, as
//! their table is scanned) and shares each view with every open stream, so a thousand open
//! operations pages cost what one does; `GET /v1/ops` reuses a view read less than a second
//! ago.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use event_relay::outbox::{outbox_status, OutboxStatus};
use event_relay::RelayDeadLetters;
use event_store::EventStore;
use kinesis_consumer::dead_letter::DeadLetterStore;
use kinesis_consumer::{Lease, LeaseTable, ShardProgress};
use quote_runtime::error_chain::chain;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;

/// How often the view is read while someone watches it.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Dead letters are read every this many refreshes (their table is scanned).
pub const DEAD_LETTER_EVERY: u32 = 5;

/// Streams of the outbox examined per read (the counts are lower bounds beyond it).
pub const OUTBOX_LIMIT: usize = 100;

/// Relay dead letters counted (beyond it the view says "at least").
pub const RELAY_LETTERS_COUNTED: usize = 100;

/// Longest a read of the view may take; a slower one keeps the last view (its `read_at` tells
/// its age).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Dead letters listed per application (all are counted).
pub const LETTERS_SHOWN: usize = 10;

/// One consumer application the view watches.
#[derive(Debug, Clone)]
pub struct WatchedApplication {
    /// The application's name (its dead letters are filed under it).
    pub name: String,
    /// Its lease table.
    pub leases: Arc<dyn LeaseTable>,
    /// Where its poison records are set aside (on AWS one table holds every application's).
    pub dead_letters: Arc<dyn DeadLetterStore>,
}

/// Where the view is read from.
#[derive(Debug, Clone)]
pub struct OpsSources {
    /// The consumer applications, in pipeline order.
    pub applications: Vec<WatchedApplication>,
    /// The event store (its outbox).
    pub store: Arc<dyn EventStore>,
    /// The relay's dead letters (commits that can never be published).
    pub relay_dead_letters: Arc<dyn RelayDeadLetters>,
}

/// The whole view at one instant.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct OpsView {
    /// When it was read.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub read_at: OffsetDateTime,
    /// Per consumer application.
    pub applications: Vec<ApplicationView>,
    /// The outbox: commits not yet on the stream.
    pub outbox: OutboxView,
}

/// One consumer application.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ApplicationView {
    /// Its name.
    pub name: String,
    /// Its shards (leases), by shard id; empty when its lease table could not be read.
    pub shards: Vec<ShardView>,
    /// The largest `MillisBehindLatest` its owners reported (`null` before any did).
    pub max_millis_behind_latest: Option<u64>,
    /// Its dead letters.
    pub dead_letters: DeadLetterView,
    /// Why its lease table could not be read (not deployed, unreachable), if it could not.
    pub error: Option<String>,
}

/// One shard of an application.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ShardView {
    /// The shard id.
    pub shard_id: String,
    /// The worker holding it, if any.
    pub owner: Option<String>,
    /// `active` (owned), `unowned`, `finished` (processed to its end) or `handing-off`.
    #[schema(value_type = String)]
    pub state: &'static str,
    /// The checkpoint (a sequence number or a sentinel).
    pub checkpoint: String,
    /// The owner's last `MillisBehindLatest` and records since its last checkpoint.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<ShardProgress>,
}

/// An application's dead letters.
#[derive(Debug, Clone, Serialize, PartialEq, Default, utoipa::ToSchema)]
pub struct DeadLetterView {
    /// How many there are (`null` until first read, or when the read failed).
    pub count: Option<usize>,
    /// The newest [`LETTERS_SHOWN`], newest first.
    pub newest: Vec<LetterView>,
}

/// One dead letter.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LetterView {
    /// The record's partition key (the quote id).
    pub partition_key: String,
    /// Its shard.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// The last error (bounded).
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was set aside.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub failed_at: OffsetDateTime,
    /// The earlier record of the same key it waits behind, if any.
    pub blocked_behind: Option<String>,
}

/// The outbox and the relay's dead letters.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct OutboxView {
    /// The backlog (`null` when it could not be read).
    #[schema(value_type = Option<Object>)]
    pub backlog: Option<OutboxStatus>,
    /// Commits the relay set aside as unpublishable (at most [`RELAY_LETTERS_COUNTED`]
    /// counted).
    pub relay_dead_letters: Option<usize>,
    /// More relay dead letters exist than were counted.
    pub relay_dead_letters_truncated: bool,
    /// Why the outbox could not be read, if it could not.
    pub error: Option<String>,
}

/// Longest error text shown for a dead letter.
const MAX_ERROR_CHARS: usize = 300;

impl OpsSources {
    /// Reads the view; `previous` supplies the dead letters when `with_dead_letters` is false.
    pub async fn read(&self, previous: Option<&OpsView>, with_dead_letters: bool) -> OpsView {
        let now = OffsetDateTime::now_utc();
        let applications = futures::future::join_all(self.applications.iter().map(|app| {
            let kept = previous
                .and_then(|view| view.applications.iter().find(|a| a.name == app.name))
                .map(|a| a.dead_letters.clone());
            self.read_application(app, with_dead_letters, kept)
        }));
        let (applications, outbox) = tokio::join!(applications, self.read_outbox(now));
        OpsView {
            read_at: now,
            applications,
            outbox,
        }
    }

    async fn read_application(
        &self,
        app: &WatchedApplication,
        with_dead_letters: bool,
        kept: Option<DeadLetterView>,
    ) -> ApplicationView {
        let dead_letters = async {
            match kept {
                Some(kept) if !with_dead_letters => kept,
                _ => read_dead_letters(app).await,
            }
        };
        let (leases, dead_letters) = tokio::join!(app.leases.list(), dead_letters);
        let (shards, error) = match leases {
            Ok(leases) => (leases.iter().map(shard_view).collect(), None),
            Err(err) => {
                tracing::debug!(application = %app.name, error = %chain(&err), "cannot read a lease table");
                (Vec::new(), Some(chain(&err).to_string()))
            }
        };
        let max_millis_behind_latest = shards
            .iter()
            .filter_map(|s: &ShardView| s.progress.map(|p| p.millis_behind_latest))
            .max();
        ApplicationView {
            name: app.name.clone(),
            shards,
            max_millis_behind_latest,
            dead_letters,
            error,
        }
    }
}

async fn read_dead_letters(app: &WatchedApplication) -> DeadLetterView {
    let application = app.name.as_str();
    {
        match app.dead_letters.letters(application).await {
            Ok(mut letters) => {
                letters.sort_by(|a, b| b.failed_at.cmp(&a.failed_at));
                DeadLetterView {
                    count: Some(letters.len()),
                    newest: letters
                        .into_iter()
                        .take(LETTERS_SHOWN)
                        .map(|letter| LetterView {
                            partition_key: letter.record.partition_key,
                            shard_id: letter.shard_id,
                            sequence_number: letter.record.sequence_number,
                            error: letter.error.chars().take(MAX_ERROR_CHARS).collect(),
                            attempts: letter.attempts,
                            failed_at: letter.failed_at,
                            blocked_behind: letter.blocked_behind,
                        })
                        .collect(),
                }
            }
            Err(err) => {
                tracing::debug!(application, error = %chain(&err), "cannot read dead letters");
                DeadLetterView::default()
            }
        }
    }
}

impl OpsSources {
    async fn read_outbox(&self, now: OffsetDateTime) -> OutboxView {
        let (backlog, relay_dead_letters) = tokio::join!(
            outbox_status(self.store.as_ref(), OUTBOX_LIMIT, now),
            self.relay_dead_letters.list(RELAY_LETTERS_COUNTED + 1)
        );
        let error = backlog.as_ref().err().map(|err| chain(err).to_string());
        let relay_dead_letters = relay_dead_letters.ok().map(|letters| letters.len());
        OutboxView {
            backlog: backlog.ok(),
            relay_dead_letters: relay_dead_letters.map(|n| n.min(RELAY_LETTERS_COUNTED)),
            relay_dead_letters_truncated: relay_dead_letters
                .is_some_and(|n| n > RELAY_LETTERS_COUNTED),
            error,
        }
    }
}

fn shard_view(lease: &Lease) -> ShardView {
    let state = if lease.is_finished() {
        "finished"
    } else if lease.handoff_owner.is_some() {
        "handing-off"
    } else if lease.lease_owner.is_some() {
        "active"
    } else {
        "unowned"
    };
    ShardView {
        shard_id: lease.lease_key.clone(),
        owner: lease.lease_owner.clone(),
        state,
        checkpoint: lease.checkpoint.to_string(),
        progress: lease.progress,
    }
}

/// Reads the view once a second while someone watches, and shares it (one per process).
#[derive(Debug)]
pub struct OpsMonitor {
    sources: OpsSources,
    views: watch::Sender<Option<Arc<OpsView>>>,
    refresher: OnceLock<()>,
    /// The last view `GET /v1/ops` read, and when: reused for [`REFRESH_INTERVAL`], one read at
    /// a time, so a flood of requests reads the tables at most once a second.
    last_read: tokio::sync::Mutex<Option<(tokio::time::Instant, Arc<OpsView>)>>,
}

impl OpsMonitor {
    /// A monitor of `sources`; it reads nothing until the first [`OpsMonitor::subscribe`].
    pub fn new(sources: OpsSources) -> Arc<Self> {
        Arc::new(Self {
            sources,
            views: watch::Sender::new(None),
            refresher: OnceLock::new(),
            last_read: tokio::sync::Mutex::new(None),
        })
    }

    /// Where the view is read from.
    pub fn sources(&self) -> &OpsSources {
        &self.sources
    }

    /// The view now: the latest shared one while streams are open, otherwise one read at most
    /// [`REFRESH_INTERVAL`] ago (concurrent callers wait for the same read).
    pub async fn current(&self) -> Arc<OpsView> {
        if self.views.receiver_count() > 0 {
            let shared = self.views.borrow().clone();
            let fresh =
                |view: &OpsView| OffsetDateTime::now_utc() - view.read_at < REFRESH_INTERVAL * 3;
            if let Some(view) = shared.filter(|view| fresh(view)) {
                return view;
            }
        }
        let mut last = self.last_read.lock().await;
        if let Some((at, view)) = last.as_ref() {
            if at.elapsed() < REFRESH_INTERVAL {
                return view.clone();
            }
        }
        let view = Arc::new(self.sources.read(None, true).await);
        *last = Some((tokio::time::Instant::now(), view.clone()));
        view
    }

    /// Every new view from now on (the first as soon as it is read); starts the refresher.
    pub fn subscribe(self: &Arc<Self>) -> watch::Receiver<Option<Arc<OpsView>>> {
        let receiver = self.views.subscribe();
        self.refresher.get_or_init(|| {
            tokio::spawn(refresh(Arc::downgrade(self)));
        });
        receiver
    }
}

/// Reads a new view every [`REFRESH_INTERVAL`] while any stream watches; ends with the monitor.
async fn refresh(monitor: Weak<OpsMonitor>) {
    let mut reads: u32 = 0;
    let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(monitor) = monitor.upgrade() else {
            return;
        };
        if monitor.views.receiver_count() == 0 {
            // Nobody watches: the next watcher gets a whole fresh view.
            monitor.views.send_replace(None);
            reads = 0;
            continue;
        }
        let previous = monitor.views.borrow().clone();
        let read = monitor
            .sources
            .read(previous.as_deref(), reads.is_multiple_of(DEAD_LETTER_EVERY));
        match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(view) => {
                reads = reads.wrapping_add(1);
                monitor.views.send_replace(Some(Arc::new(view)));
            }
            Err(_) => tracing::warn!(
                timeout_secs = READ_TIMEOUT.as_secs(),
                "reading the operations view timed out; keeping the last one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use event_relay::InMemoryRelayDeadLetters;
    use event_store::InMemoryEventStore;
    use kinesis_consumer::dead_letter::InMemoryDeadLetters;
    use kinesis_consumer::{Checkpoint, LeaseTableError};

    use super::*;

    /// A lease table that counts its scans (every other call is refused).
    #[derive(Debug, Default)]
    struct CountedScans(AtomicUsize);

    fn unused() -> LeaseTableError {
        LeaseTableError::Corrupt("not used by the operations view".into())
    }

    #[async_trait]
    impl LeaseTable for CountedScans {
        async fn create_if_absent(&self, _: &Lease) -> Result<bool, LeaseTableError> {
            Err(unused())
        }
        async fn list(&self) -> Result<Vec<Lease>, LeaseTableError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(vec![Lease::new("shardId-0", Checkpoint::TrimHorizon)])
        }
        async fn get(&self, _: &str) -> Result<Option<Lease>, LeaseTableError> {
            Err(unused())
        }
        async fn renew(&self, _: &Lease) -> Result<Lease, LeaseTableError> {
            Err(unused())
        }
        async fn take(&self, _: &Lease, _: &str) -> Result<Lease, LeaseTableError> {
            Err(unused())
        }
        async fn release(&self, _: &Lease) -> Result<(), LeaseTableError> {
            Err(unused())
        }
        async fn checkpoint(
            &self,
            _: &Lease,
            _: &Checkpoint,
            _: u64,
        ) -> Result<Lease, LeaseTableError> {
            Err(unused())
        }
        async fn request_handoff(&self, _: &Lease, _: &str) -> Result<(), LeaseTableError> {
            Err(unused())
        }
        async fn hand_off(&self, _: &Lease) -> Result<(), LeaseTableError> {
            Err(unused())
        }
        async fn rewind(&self, _: &Lease, _: &Checkpoint) -> Result<Lease, LeaseTableError> {
            Err(unused())
        }
        async fn add_children(&self, _: &str, _: &[String]) -> Result<(), LeaseTableError> {
            Err(unused())
        }
        async fn delete_finished(&self, _: &str) -> Result<bool, LeaseTableError> {
            Err(unused())
        }
    }

    fn monitor(scans: Arc<CountedScans>) -> Arc<OpsMonitor> {
        OpsMonitor::new(OpsSources {
            applications: vec![WatchedApplication {
                name: "projector".into(),
                leases: scans,
                dead_letters: Arc::new(InMemoryDeadLetters::new()),
            }],
            store: Arc::new(InMemoryEventStore::new()),
            relay_dead_letters: Arc::new(InMemoryRelayDeadLetters::new()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_reads_scans_the_tables_once_a_second() {
        let scans = Arc::new(CountedScans::default());
        let monitor = monitor(scans.clone());
        let views = futures::future::join_all((0..50).map(|_| monitor.current())).await;
        assert!(views.iter().all(|v| v.applications[0].shards.len() == 1));
        assert_eq!(scans.0.load(Ordering::SeqCst), 1);
        tokio::time::advance(REFRESH_INTERVAL).await;
        monitor.current().await;
        assert_eq!(scans.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn open_streams_share_one_read_a_second_and_none_are_read_without_them() {
        let scans = Arc::new(CountedScans::default());
        let monitor = monitor(scans.clone());
        let mut streams: Vec<_> = (0..100).map(|_| monitor.subscribe()).collect();
        for stream in &mut streams {
            stream.changed().await.expect("a view");
        }
        tokio::time::sleep(REFRESH_INTERVAL * 3).await;
        let read = scans.0.load(Ordering::SeqCst);
        assert!((3..=5).contains(&read), "{read} scans in about 3 s");
        drop(streams);
        tokio::time::sleep(REFRESH_INTERVAL * 2).await;
        let idle = scans.0.load(Ordering::SeqCst);
        tokio::time::sleep(REFRESH_INTERVAL * 10).await;
        assert_eq!(
            scans.0.load(Ordering::SeqCst),
            idle,
            "no scan with no stream open"
        );
    }
}
