//! `quotes rebuild read-model` and `quotes read-model status|switch|retire`: the blue/green
//! rebuild of the customer-quotes read model (ADR 0011).
//!
//! - `rebuild read-model --into TABLE`: creates TABLE, makes it standby in the routing (so the
//!   projectors write it too), then runs `projector::rebuild` (scan, then follow to the tip),
//!   printing its progress; a killed run resumes where it stopped.
//! - `read-model status`: the routing, each table's rebuild progress, and how far each table
//!   is behind the event store on a sample of quotes.
//! - `read-model switch TABLE`: makes a caught-up table active (the previous one stays
//!   standby, so switching back needs no rebuild); services follow within
//!   `READ_MODEL_ROUTING_SECS`.
//! - `read-model retire TABLE`: stops writing a standby table (before deleting it).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use aws_config::SdkConfig;
use event_store::dynamodb::DynamoEventStore;
use event_store::{EventStore, ScanPart};
use kinesis_consumer::source::polling::{KinesisPolling, PollingConfig};
use projector::rebuild::{Phase, Rebuild, RebuildPlan, RebuildProgress};
use quote_domain::quote::QuoteId;
use quote_read_model::dynamodb::{create_read_model_table, DynamoReadModel};
use quote_read_model::routing::{Routing, RoutingControl};
use quote_read_model::{ReadModel, ReadModelError};
use serde::Serialize;

use crate::cli::{ReadModelStatusArgs, ReadModelTableArgs, RebuildReadModelArgs};
use crate::settings::event_store::ReadModelSettings;

/// How often a running rebuild prints its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

fn table_model(sdk: &SdkConfig, table: &str) -> Arc<dyn ReadModel> {
    Arc::new(DynamoReadModel::new(dynamodb(sdk), table))
}

fn routing_control(settings: &ReadModelSettings, sdk: &SdkConfig) -> RoutingControl {
    RoutingControl::new(
        table_model(sdk, &settings.read_model_table),
        settings.read_model_table.clone(),
    )
}

/// Refuses a rebuild target the services' grants would not cover, or the live table.
pub fn check_target(home: &str, into: &str, routing: &Routing) -> anyhow::Result<()> {
    let prefix = format!("{home}-");
    if !into.starts_with(&prefix) || into.len() == prefix.len() {
        bail!(
            "--into {into}: a rebuilt read model is named {prefix}<suffix> (READ_MODEL_TABLE, a \
             dash, a suffix), the tables the services are granted"
        );
    }
    if routing.active == into {
        bail!("--into {into} is the active read model; rebuild into another table, then switch");
    }
    Ok(())
}

/// `quotes rebuild read-model`: returns the final progress.
pub async fn rebuild(
    args: &RebuildReadModelArgs,
    sdk: &SdkConfig,
) -> anyhow::Result<RebuildProgress> {
    let home = &args.read_model.read_model_table;
    let into = &args.into;
    let control = routing_control(&args.read_model, sdk);
    let (routing, _) = control.load().await.context("reading the routing")?;
    check_target(home, into, &routing)?;
    create_read_model_table(&dynamodb(sdk), into)
        .await
        .with_context(|| format!("creating {into}"))?;
    let target = table_model(sdk, into);
    let earlier = RebuildProgress::load(target.as_ref()).await?;
    let (_, registered) = control
        .change(|r| r.add_standby(into))
        .await
        .context("making the table standby")?;
    if registered && earlier.is_some() {
        // The table holds a rebuild's progress but was not written by the projectors since:
        // what it holds may be stale in ways no resumption can see.
        bail!(
            "{into} holds an earlier rebuild but was not kept in step since it was retired; \
             delete it or rebuild into another table"
        );
    }
    eprintln!(
        "{into}: standby (the projectors write it within {} s); rebuilding from {}",
        args.read_model.read_model_routing_secs, args.event_store.events_table
    );
    let store: Arc<dyn EventStore> = Arc::new(DynamoEventStore::new(
        dynamodb(sdk),
        args.event_store.tables(),
    ));
    let source = Arc::new(KinesisPolling::new(
        aws_sdk_kinesis::Client::new(sdk),
        args.event_store.event_stream.clone(),
        PollingConfig::default(),
    ));
    let plan = RebuildPlan {
        segments: args.segments,
        page_size: usize::try_from(args.page_size).unwrap_or(500),
        max_rcu: args.max_rcu,
        routing_ttl: Duration::from_secs(args.read_model.read_model_routing_secs),
        clock_margin: Duration::from_secs(args.clock_margin_secs),
    };
    let rebuild = Rebuild::open(store, target, into, source, plan).await?;
    let run = rebuild.run();
    tokio::pin!(run);
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            result = &mut run => return Ok(result?),
            _ = ticker.tick() => eprintln!("{}", render_progress(&rebuild.progress().await)),
        }
    }
}

/// One line of progress.
pub fn render_progress(progress: &RebuildProgress) -> String {
    let phase = match &progress.phase {
        Phase::Scanning => "scanning".to_owned(),
        Phase::Following => "following the stream".to_owned(),
        Phase::CaughtUp { at } => format!("caught up at {at}"),
    };
    let mut line = format!(
        "{}: {phase}; segments {}/{} done, {} events scanned, {} quotes written, {} records followed",
        progress.table,
        progress.segments_done(),
        progress.segments.len(),
        progress.events_scanned,
        progress.quotes_written,
        progress.records_followed,
    );
    if progress.unreadable > 0 {
        let _ = write!(
            line,
            ", {} streams could not be folded (first: {})",
            progress.unreadable,
            progress.unreadable_streams.join(", ")
        );
    }
    line
}

/// A table as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TableView {
    /// The table.
    pub table: String,
    /// `active`, `standby` or `not written` (the home table after a switch and a retire).
    pub role: &'static str,
    /// Whether the table exists.
    pub exists: bool,
    /// Its rebuild, if it was rebuilt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<RebuildProgress>,
    /// How far behind the store it is on the sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<SampledLag>,
}

/// A table's lag on a sample of quotes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SampledLag {
    /// Quotes sampled.
    pub sampled: usize,
    /// At the store's version.
    pub current: usize,
    /// Behind it.
    pub behind: usize,
    /// Not in the table.
    pub missing: usize,
    /// The most versions a sampled quote is behind (a missing one counts its whole stream).
    pub max_versions_behind: u64,
}

/// What `status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// The home table (holds the routing).
    pub home: String,
    /// The routing in force.
    pub routing: Routing,
    /// Home, active and standby tables.
    pub tables: Vec<TableView>,
}

/// `quotes read-model status`.
pub async fn status(args: &ReadModelStatusArgs, sdk: &SdkConfig) -> anyhow::Result<StatusView> {
    let home = args.read_model.read_model_table.clone();
    let (routing, _) = routing_control(&args.read_model, sdk)
        .load()
        .await
        .context("reading the routing")?;
    let store = DynamoEventStore::new(dynamodb(sdk), args.event_store.tables());
    let sample = sample_heads(&store, usize::try_from(args.sample).unwrap_or(50)).await?;
    let mut names: Vec<&str> = routing.tables().collect();
    if !names.contains(&home.as_str()) {
        names.push(&home);
    }
    let mut tables = Vec::new();
    for name in names {
        let model = table_model(sdk, name);
        let role = if name == routing.active {
            "active"
        } else if routing.standby.iter().any(|t| t == name) {
            "standby"
        } else {
            "not written"
        };
        let exists = match model.ping().await {
            Ok(()) => true,
            Err(ReadModelError::TableMissing { .. }) => false,
            Err(err) => return Err(err).with_context(|| format!("describing {name}")),
        };
        let (rebuild, lag) = if exists {
            let rebuild = RebuildProgress::load(model.as_ref())
                .await?
                .map(|(progress, _)| progress);
            (rebuild, Some(lag_of(model.as_ref(), &sample).await?))
        } else {
            (None, None)
        };
        tables.push(TableView {
            table: name.to_owned(),
            role,
            exists,
            rebuild,
            lag,
        });
    }
    Ok(StatusView {
        home,
        routing,
        tables,
    })
}

/// Up to `size` quotes of the store with their current versions.
async fn sample_heads(store: &DynamoEventStore, size: usize) -> anyhow::Result<Vec<(String, u64)>> {
    let mut heads: Vec<(String, u64)> = Vec::new();
    let mut cursor = None;
    while heads.len() < size {
        let page = store
            .scan_events(ScanPart::WHOLE, cursor.as_ref(), 500)
            .await
            .context("scanning the event store")?;
        for event in &page.events {
            let Ok(quote_id) = QuoteId::parse_stream_id(&event.stream_id) else {
                continue;
            };
            let quote_id = quote_id.to_string();
            let count = heads.len();
            match heads.last_mut() {
                Some((last, version)) if *last == quote_id => *version = event.version,
                _ if count < size => heads.push((quote_id, event.version)),
                _ => {}
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // The last stream may continue past the page read: take its version from the head.
    for (quote_id, version) in &mut heads {
        if let Ok(id) = quote_id.parse::<QuoteId>() {
            if let Some(head) = store.stream_head(&id.stream_id()).await? {
                *version = head.version;
            }
        }
    }
    Ok(heads)
}

async fn lag_of(model: &dyn ReadModel, sample: &[(String, u64)]) -> anyhow::Result<SampledLag> {
    let mut lag = SampledLag {
        sampled: sample.len(),
        ..SampledLag::default()
    };
    for (quote_id, version) in sample {
        match model.get(quote_id).await? {
            Some(summary) if summary.version >= *version => lag.current += 1,
            Some(summary) => {
                lag.behind += 1;
                lag.max_versions_behind = lag.max_versions_behind.max(version - summary.version);
            }
            None => {
                lag.missing += 1;
                lag.max_versions_behind = lag.max_versions_behind.max(*version);
            }
        }
    }
    Ok(lag)
}

/// The status as text.
pub fn render_status(view: &StatusView) -> String {
    let mut out = format!(
        "routing (in {}): active {}, standby [{}]\n",
        view.home,
        view.routing.active,
        view.routing.standby.join(", ")
    );
    for table in &view.tables {
        let _ = write!(out, "{:<40} {:<12}", table.table, table.role);
        if !table.exists {
            out.push_str(" does not exist\n");
            continue;
        }
        match &table.lag {
            Some(lag) => {
                let _ = write!(
                    out,
                    " sample {}: {} current, {} behind, {} missing (max {} versions behind)",
                    lag.sampled, lag.current, lag.behind, lag.missing, lag.max_versions_behind
                );
            }
            None => out.push_str(" -"),
        }
        out.push('\n');
        if let Some(rebuild) = &table.rebuild {
            let _ = writeln!(out, "    rebuild: {}", render_progress(rebuild));
        }
    }
    out
}

/// What `switch` and `retire` did.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingChange {
    /// Whether the routing changed.
    pub changed: bool,
    /// The routing afterwards.
    pub routing: Routing,
    /// How long services may keep the previous routing.
    pub routing_secs: u64,
}

/// `quotes read-model switch TABLE`.
pub async fn switch(args: &ReadModelTableArgs, sdk: &SdkConfig) -> anyhow::Result<RoutingChange> {
    let table = &args.table;
    let control = routing_control(&args.read_model, sdk);
    let (routing, _) = control.load().await.context("reading the routing")?;
    let model = table_model(sdk, table);
    model
        .ping()
        .await
        .with_context(|| format!("{table} cannot be read"))?;
    if routing.active != *table && !args.force {
        if !routing.standby.iter().any(|t| t == table) {
            bail!(
                "{table} is not standby: the projectors do not write it, so it is not current \
                 (rebuild into it with `quotes rebuild read-model --into {table}`, or --force)"
            );
        }
        match RebuildProgress::load(model.as_ref()).await? {
            Some((progress, _)) if !matches!(progress.phase, Phase::CaughtUp { .. }) => bail!(
                "{table}'s rebuild has not caught up ({}); run `quotes rebuild read-model --into \
                 {table}` again to finish it, or --force",
                render_progress(&progress)
            ),
            _ => {}
        }
    }
    let (routing, changed) = control
        .change(|r| r.switch_to(table))
        .await
        .context("changing the routing")?;
    Ok(RoutingChange {
        changed,
        routing,
        routing_secs: args.read_model.read_model_routing_secs,
    })
}

/// `quotes read-model retire TABLE`.
pub async fn retire(args: &ReadModelTableArgs, sdk: &SdkConfig) -> anyhow::Result<RoutingChange> {
    let table = &args.table;
    let control = routing_control(&args.read_model, sdk);
    let (routing, _) = control.load().await.context("reading the routing")?;
    if routing.active == *table {
        bail!("{table} is the active read model; switch to another table first");
    }
    let (routing, changed) = control
        .change(|r| r.retire(table))
        .await
        .context("changing the routing")?;
    Ok(RoutingChange {
        changed,
        routing,
        routing_secs: args.read_model.read_model_routing_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_named_after_the_home_table_and_is_not_live() {
        let routing = Routing::home("customer-quotes");
        assert!(check_target("customer-quotes", "customer-quotes-v2", &routing).is_ok());
        for refused in [
            "customer-quotes",
            "customer-quotes-",
            "other-v2",
            "customer-quotesv2",
        ] {
            assert!(
                check_target("customer-quotes", refused, &routing).is_err(),
                "{refused}"
            );
        }
        let mut switched = routing.clone();
        switched.switch_to("customer-quotes-v2");
        assert!(check_target("customer-quotes", "customer-quotes-v2", &switched).is_err());
    }
}
