//! The notification ledger's contract, run against the in-memory adapter and the DynamoDB
//! adapter on moto's DynamoDB: claims, records, re-claims after a failure, stale claims, and
//! one winner among concurrent claimers.

use std::sync::Arc;
use std::time::Duration;

use notifier::ledger::{
    create_notifications_table, notification_id, Claim, ClaimDetails, DynamoNotificationLedger,
    InMemoryNotificationLedger, LedgerError, NotificationLedger, Outcome, Status,
};
use notifier::rules::Channel;
use notifier::Created;
use quote_domain::quote::QuoteId;
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(60);
const T0: OffsetDateTime = datetime!(2026-11-27 10:00 UTC);

fn at(seconds: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(seconds)
}

fn details(channel: Channel) -> (Uuid, ClaimDetails) {
    let event_id = Uuid::new_v4();
    (
        notification_id(event_id, channel),
        ClaimDetails {
            quote_id: QuoteId::from_uuid(Uuid::new_v4()),
            event_id,
            event_type: "QuoteIssued".into(),
            channel,
            recipient: "a***@example.com".into(),
        },
    )
}

fn sent(id: &str) -> Outcome {
    Outcome::Sent {
        provider_message_id: id.into(),
    }
}

async fn contract(ledger: Arc<dyn NotificationLedger>) {
    assert_eq!(ledger.claim_timeout(), TIMEOUT);
    ledger.ready().await.expect("ready");

    // Claim, send, record: later claims find it done.
    let (id, d) = details(Channel::Email);
    assert_eq!(ledger.get(id).await.expect("get"), None);
    assert_eq!(
        ledger.claim(id, &d, at(0)).await.expect("claim"),
        Claim::Claimed { attempt: 1 }
    );
    assert_eq!(
        ledger.claim(id, &d, at(1)).await.expect("claim"),
        Claim::InProgress {
            attempt: 1,
            stale_at: at(60)
        }
    );
    ledger
        .record(id, 1, &sent("m-1"), at(2))
        .await
        .expect("record");
    for now in [at(3), at(3600)] {
        assert_eq!(
            ledger.claim(id, &d, now).await.expect("claim"),
            Claim::AlreadyDone(sent("m-1"))
        );
    }
    let entry = ledger.get(id).await.expect("get").expect("entry");
    assert_eq!(entry.status, Status::Sent);
    assert_eq!(entry.attempt, 1);
    assert_eq!(entry.details, d);
    assert_eq!(entry.claimed_at, at(0));
    assert_eq!(entry.finished_at, Some(at(2)));
    assert_eq!(entry.outcome, Some(sent("m-1")));
    assert!(matches!(
        ledger.record(id, 1, &sent("m-2"), at(4)).await,
        Err(LedgerError::NotClaimed { attempt: 1, .. })
    ));

    // A failed send is claimed again, as the next attempt.
    let (id, d) = details(Channel::Sms);
    assert_eq!(
        ledger.claim(id, &d, at(0)).await.expect("claim"),
        Claim::Claimed { attempt: 1 }
    );
    let failed = Outcome::Failed {
        error: "throttled".into(),
    };
    ledger.record(id, 1, &failed, at(1)).await.expect("record");
    assert_eq!(
        ledger.get(id).await.expect("get").expect("entry").outcome,
        Some(failed)
    );
    assert_eq!(
        ledger.claim(id, &d, at(5)).await.expect("claim"),
        Claim::Claimed { attempt: 2 }
    );
    let entry = ledger.get(id).await.expect("get").expect("entry");
    assert_eq!(
        (entry.status, entry.claimed_at, entry.outcome),
        (Status::Sending, at(5), None)
    );
    assert!(matches!(
        ledger.record(id, 1, &sent("late"), at(6)).await,
        Err(LedgerError::NotClaimed { .. })
    ));
    ledger
        .record(id, 2, &sent("m-3"), at(6))
        .await
        .expect("record");
    assert_eq!(
        ledger.claim(id, &d, at(7)).await.expect("claim"),
        Claim::AlreadyDone(sent("m-3"))
    );

    // A stale claim is resolved as unknown (assumed sent), never claimed again; a late record
    // of the real outcome still lands.
    let (id, d) = details(Channel::Email);
    ledger.claim(id, &d, at(0)).await.expect("claim");
    let Claim::AlreadyDone(Outcome::Unknown { reason }) =
        ledger.claim(id, &d, at(60)).await.expect("claim")
    else {
        panic!("a stale claim is resolved as unknown");
    };
    assert!(reason.contains("assumed sent"), "{reason}");
    assert!(matches!(
        ledger.claim(id, &d, at(61)).await.expect("claim"),
        Claim::AlreadyDone(Outcome::Unknown { .. })
    ));
    let entry = ledger.get(id).await.expect("get").expect("entry");
    assert_eq!(
        (entry.status, entry.finished_at),
        (Status::Unknown, Some(at(60)))
    );
    ledger
        .record(id, 1, &sent("m-late"), at(62))
        .await
        .expect("a late record replaces unknown");
    assert_eq!(
        ledger.claim(id, &d, at(63)).await.expect("claim"),
        Claim::AlreadyDone(sent("m-late"))
    );

    // A sender may itself record unknown.
    let (id, d) = details(Channel::Sms);
    ledger.claim(id, &d, at(0)).await.expect("claim");
    let unknown = Outcome::Unknown {
        reason: "timeout".into(),
    };
    ledger.record(id, 1, &unknown, at(1)).await.expect("record");
    assert_eq!(
        ledger.claim(id, &d, at(2)).await.expect("claim"),
        Claim::AlreadyDone(unknown)
    );

    // Never claimed.
    assert!(matches!(
        ledger.record(Uuid::new_v4(), 1, &sent("x"), at(0)).await,
        Err(LedgerError::NotClaimed { .. })
    ));

    // Concurrent claimers: exactly one wins, the others see it in progress.
    let (id, d) = details(Channel::Email);
    let claims = futures_join(ledger.clone(), id, d.clone(), 8).await;
    let winners = claims
        .iter()
        .filter(|c| matches!(c, Claim::Claimed { .. }))
        .count();
    assert_eq!(winners, 1, "{claims:?}");
    assert!(claims.iter().all(|c| matches!(
        c,
        Claim::Claimed { attempt: 1 } | Claim::InProgress { attempt: 1, .. }
    )));

    // … and again when re-claiming a failed attempt.
    ledger
        .record(id, 1, &Outcome::Failed { error: "x".into() }, at(1))
        .await
        .expect("record");
    let claims = futures_join(ledger.clone(), id, d, 8).await;
    let winners: Vec<_> = claims
        .iter()
        .filter(|c| matches!(c, Claim::Claimed { .. }))
        .collect();
    assert_eq!(winners, [&Claim::Claimed { attempt: 2 }], "{claims:?}");
}

/// `n` concurrent claims of `id` at `T0`.
async fn futures_join(
    ledger: Arc<dyn NotificationLedger>,
    id: Uuid,
    d: ClaimDetails,
    n: usize,
) -> Vec<Claim> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let ledger = ledger.clone();
            let d = d.clone();
            tokio::spawn(async move { ledger.claim(id, &d, at(2)).await.expect("claim") })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn in_memory_ledger_meets_the_contract() {
    contract(Arc::new(InMemoryNotificationLedger::new(TIMEOUT))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_ledger_meets_the_contract() {
    let sdk = testkit::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = testkit::unique_name("notifications");
    assert_eq!(
        create_notifications_table(&client, &table)
            .await
            .expect("create"),
        Created::Created
    );
    assert_eq!(
        create_notifications_table(&client, &table)
            .await
            .expect("create again"),
        Created::Existed
    );
    contract(Arc::new(DynamoNotificationLedger::new(
        client.clone(),
        table.clone(),
        TIMEOUT,
    )))
    .await;

    // Nothing personal is stored: the recipient is the redacted form given.
    let items = client
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert!(!items.is_empty());
    assert!(items.iter().all(|item| item
        .get("recipient")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|r| r.contains("***"))));

    let missing = DynamoNotificationLedger::new(client, testkit::unique_name("absent"), TIMEOUT);
    assert!(missing.ready().await.is_err());
}
