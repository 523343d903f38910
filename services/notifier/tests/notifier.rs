//! The notifier handling outcome events: first with in-memory senders and ledger (rules,
//! redelivery, retries after failures, crashed and concurrent senders), then on the emulators
//! (SES v2 and SNS on moto, the ledger on moto's DynamoDB), reading what moto recorded as sent
//! from `GET {AWS_ENDPOINT_URL}/moto-api/data.json` (`ses.Message`, `sns.SMS`).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use event_relay::{InMemorySink, Relay, RelayConfig};
use event_store::{AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, NewEvent};
use kinesis_consumer::source::memory::InMemoryStream;
use notifier::ledger::{
    create_notifications_table, notification_id, Claim, ClaimDetails, DynamoNotificationLedger,
    InMemoryNotificationLedger, NotificationLedger, Outcome, Status,
};
use notifier::rules::Channel;
use notifier::senders::{
    create_ses_identity, InMemoryEmailSender, InMemorySmsSender, SendError, SesEmailSender,
    SnsSmsSender,
};
use notifier::{Created, Notifier};
use quote_domain::quote::{QuoteDeclined, QuoteEvent, QuoteId, QuoteIssued, QuoteReferred};
use quote_domain::request::QuoteRequest;
use quote_pipeline::service::embedded_worker;
use quote_pipeline::stream_sink::InMemoryStreamSink;
use quote_pipeline::{EventHandler, HandlerContext, HandlerError};
use testkit::fixtures::{parse_request, quote_requested, request_input};
use uuid::Uuid;

const HONDA: &str = "1HGCM82633A004352";

// ---------------------------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------------------------

/// Contact points and preferences of a request.
#[derive(Clone)]
struct Customer {
    email: String,
    phone: String,
    notify_email: bool,
    notify_sms: bool,
    max_premium_dollars: Option<u64>,
}

impl Customer {
    /// A customer with addresses no other test uses, asking for both channels.
    fn unique() -> Self {
        let n = Uuid::new_v4().as_u128();
        Self {
            email: format!("ana+{:012x}@example.com", n & 0xffff_ffff_ffff),
            // +1 999 and ten digits: a valid E.164 number of 14 digits.
            phone: format!("+1999{:010}", n % 10_000_000_000),
            notify_email: true,
            notify_sms: true,
            max_premium_dollars: Some(1800),
        }
    }

    /// [`Customer::unique`], asking for e-mails only.
    fn email_only() -> Self {
        Self {
            notify_sms: false,
            ..Self::unique()
        }
    }

    fn request(&self) -> QuoteRequest {
        let mut input = request_input(&[HONDA]);
        input["contact"] = serde_json::json!({"email": self.email, "phone": self.phone});
        input["notify"] = serde_json::json!(
            {"email": self.notify_email, "sms": self.notify_sms, "max_premium": self.max_premium_dollars}
        );
        parse_request(input)
    }
}

/// `QuoteIssued` for a premium in cents (through serde, so optional fields default).
fn issued(cents: u64) -> QuoteEvent {
    QuoteEvent::QuoteIssued(
        serde_json::from_value::<QuoteIssued>(serde_json::json!({
            "annual_premium": cents,
            "valid_until": "2026-12-27T10:00:00Z",
            "rating_table_version": "2026-11",
        }))
        .expect("QuoteIssued"),
    )
}

fn reasons(reasons: &[&str]) -> Vec<String> {
    reasons.iter().map(|r| (*r).to_owned()).collect()
}

fn declined(why: &[&str]) -> QuoteEvent {
    QuoteEvent::QuoteDeclined(QuoteDeclined {
        reasons: reasons(why),
    })
}

fn referred(why: &[&str]) -> QuoteEvent {
    QuoteEvent::QuoteReferred(QuoteReferred {
        reasons: reasons(why),
    })
}

fn new_event(event: &QuoteEvent) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        occurred_at: time::OffsetDateTime::now_utc(),
        correlation_id: "corr".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: "test".into(),
        data: event.to_data().expect("data"),
    }
}

/// A notifier with an in-memory event store (and its relay) to handle events from.
struct Setup {
    store: Arc<dyn EventStore>,
    context: HandlerContext,
    relay: tokio::task::JoinHandle<()>,
    notifier: Notifier,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

impl Setup {
    fn new(notifier: Notifier) -> Self {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let (relay, task) = Relay::new(
            store.clone(),
            Arc::new(InMemorySink::new()),
            RelayConfig::default(),
        )
        .spawn(Default::default());
        Self {
            context: HandlerContext::new(store.clone(), relay, "notifier"),
            store,
            relay: task,
            notifier,
        }
    }

    /// Appends a quote requested by `customer` followed by `outcomes`; their envelopes.
    async fn quote(&self, customer: &Customer, outcomes: &[QuoteEvent]) -> Vec<EventEnvelope> {
        let (quote_id, requested) = quote_requested(customer.request());
        let mut events = vec![new_event(&requested)];
        events.extend(outcomes.iter().map(new_event));
        self.store
            .append(AppendRequest {
                stream_id: quote_id.stream_id(),
                expected_version: 0,
                events,
                idempotency: None,
                customer_id: Some("cust-42".into()),
            })
            .await
            .expect("append")
            .events
    }

    /// The notifier handles (a delivery of) `event`.
    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        self.notifier.handle(event, &self.context).await
    }

    /// [`Setup::handle`], which must succeed.
    async fn deliver(&self, event: &EventEnvelope) {
        self.handle(event).await.expect("handle");
    }
}

/// The notifier with in-memory senders and ledger.
struct Fakes {
    setup: Setup,
    ledger: Arc<InMemoryNotificationLedger>,
    email: Arc<InMemoryEmailSender>,
    sms: Arc<InMemorySmsSender>,
}

impl Deref for Fakes {
    type Target = Setup;

    fn deref(&self) -> &Setup {
        &self.setup
    }
}

impl Fakes {
    fn new() -> Self {
        Self::with_claim_timeout(Duration::from_secs(60))
    }

    fn with_claim_timeout(claim_timeout: Duration) -> Self {
        let ledger = Arc::new(InMemoryNotificationLedger::new(claim_timeout));
        let email = Arc::new(InMemoryEmailSender::new());
        let sms = Arc::new(InMemorySmsSender::new());
        Self {
            setup: Setup::new(Notifier::new(ledger.clone(), email.clone(), sms.clone())),
            ledger,
            email,
            sms,
        }
    }

    /// How many e-mails and SMS were sent.
    fn sent(&self) -> (usize, usize) {
        (self.email.sent().len(), self.sms.sent().len())
    }

    /// The ledger's status of the notification of `event` on `channel`.
    async fn status(&self, event: &EventEnvelope, channel: Channel) -> Status {
        self.ledger
            .get(notification_id(event.event_id, channel))
            .await
            .expect("get")
            .expect("entry")
            .status
    }

    /// Another delivery claims the e-mail of `event` (and dies, unless it records an outcome):
    /// the notification's id.
    async fn claim_email_elsewhere(&self, event: &EventEnvelope) -> Uuid {
        let id = notification_id(event.event_id, Channel::Email);
        let claim = self
            .ledger
            .claim(
                id,
                &details(event, Channel::Email),
                time::OffsetDateTime::now_utc(),
            )
            .await
            .expect("claim");
        assert_eq!(claim, Claim::Claimed { attempt: 1 });
        id
    }

    /// Another delivery claims the e-mail of `event` now and records `outcome` 300 ms later.
    async fn email_claimed_elsewhere(
        &self,
        event: &EventEnvelope,
        outcome: Outcome,
    ) -> tokio::task::JoinHandle<()> {
        let id = self.claim_email_elsewhere(event).await;
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ledger
                .record(id, 1, &outcome, time::OffsetDateTime::now_utc())
                .await
                .expect("record");
        })
    }
}

fn details(event: &EventEnvelope, channel: Channel) -> ClaimDetails {
    ClaimDetails {
        quote_id: QuoteId::parse_stream_id(&event.stream_id).expect("stream id"),
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        channel,
        recipient: "elsewhere".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// With in-memory senders and ledger.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_issued_quote_under_the_ceiling_is_sent_once_per_channel() {
    let f = Fakes::new();
    let customer = Customer::unique();
    let events = f.quote(&customer, &[issued(123_456)]).await;
    let outcome = &events[1];
    for _ in 0..3 {
        f.deliver(outcome).await;
    }
    let emails = f.email.sent();
    assert_eq!(emails.len(), 1, "redeliveries send nothing");
    assert_eq!(emails[0].to.as_str(), customer.email);
    assert!(
        emails[0].subject.contains("$1,234.56"),
        "{}",
        emails[0].subject
    );
    assert!(emails[0].body.contains("2026-12-27"));
    let texts = f.sms.sent();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].to.as_str(), customer.phone);
    assert!(texts[0].text.contains("$1,234.56/year"));

    let entry = f
        .ledger
        .get(notification_id(outcome.event_id, Channel::Email))
        .await
        .expect("get")
        .expect("entry");
    assert_eq!(entry.status, Status::Sent);
    assert_eq!(
        entry.outcome,
        Some(Outcome::Sent {
            provider_message_id: "email-1".into()
        })
    );
    assert_eq!(entry.details.event_type, "QuoteIssued");
    assert!(!entry.details.recipient.contains(&customer.email));
}

#[tokio::test]
async fn an_issued_quote_over_the_ceiling_is_not_notified() {
    let f = Fakes::new();
    let events = f.quote(&Customer::unique(), &[issued(180_001)]).await;
    f.deliver(&events[1]).await;
    assert_eq!(f.sent(), (0, 0));
    assert!(f.ledger.entries().is_empty());
}

#[tokio::test]
async fn only_the_chosen_channels_are_used() {
    let f = Fakes::new();
    let customer = Customer {
        max_premium_dollars: None,
        ..Customer::email_only()
    };
    let events = f.quote(&customer, &[issued(99_999_900)]).await;
    f.deliver(&events[1]).await;
    assert_eq!(f.sent(), (1, 0));
}

#[tokio::test]
async fn a_declined_quote_is_emailed_with_its_reasons_whatever_the_premium_ceiling() {
    let f = Fakes::new();
    let customer = Customer {
        max_premium_dollars: Some(1),
        ..Customer::email_only()
    };
    let events = f
        .quote(
            &customer,
            &[declined(&["driver VA T12345678: licence suspended"])],
        )
        .await;
    f.deliver(&events[1]).await;
    let emails = f.email.sent();
    assert_eq!(emails.len(), 1);
    assert!(emails[0].subject.ends_with("was declined"));
    assert!(emails[0]
        .body
        .contains("  - driver VA T12345678: licence suspended"));
}

#[tokio::test]
async fn a_referral_is_notified_as_of_its_own_version() {
    let f = Fakes::new();
    let customer = Customer {
        max_premium_dollars: None,
        ..Customer::unique()
    };
    // Referred, then issued by the underwriter: the referral's redelivery still tells about the
    // referral (and folding up to it works although a later event exists).
    let events = f
        .quote(
            &customer,
            &[referred(&["driving history unavailable"]), issued(150_000)],
        )
        .await;
    f.handle(&events[1]).await.expect("referral");
    f.handle(&events[2]).await.expect("issue");
    let emails = f.email.sent();
    assert_eq!(emails.len(), 2);
    assert!(emails[0].subject.ends_with("is being reviewed"));
    assert!(emails[0].body.contains("driving history unavailable"));
    assert!(emails[1].subject.contains("$1,500.00"));
    assert_eq!(f.sms.sent().len(), 2);
    assert!(f.sms.sent()[0].text.contains("underwriter"));
}

#[tokio::test]
async fn other_events_and_a_foreign_version_are_handled_safely() {
    let f = Fakes::new();
    let events = f.quote(&Customer::unique(), &[issued(100_000)]).await;
    // The request itself: nothing to do.
    f.handle(&events[0]).await.expect("request");
    // An envelope the stream does not hold at its version.
    let mut foreign = events[1].clone();
    foreign.event_id = Uuid::new_v4();
    assert!(f.handle(&foreign).await.is_err());
    assert_eq!(f.sent(), (0, 0));
}

#[tokio::test]
async fn a_retry_after_a_failed_send_sends_but_not_after_a_successful_one() {
    let f = Fakes::new();
    let events = f.quote(&Customer::unique(), &[issued(100_000)]).await;
    f.email.fail_next(SendError::Throttled {
        provider: "SES",
        message: "TooManyRequestsException: Maximum sending rate exceeded".into(),
    });
    let err = f
        .handle(&events[1])
        .await
        .expect_err("the failed e-mail fails the event");
    assert!(err.is_transient(), "throttling is waited out: {err}");
    assert!(
        chain(&err).contains("Maximum sending rate"),
        "{}",
        chain(&err)
    );
    // The SMS went out anyway.
    assert_eq!(f.sent(), (0, 1));
    let email_id = notification_id(events[1].event_id, Channel::Email);
    let entry = f.ledger.get(email_id).await.expect("get").expect("entry");
    assert_eq!((entry.status, entry.attempt), (Status::Failed, 1));

    // The worker's retry: the e-mail is sent (attempt 2), the SMS is not sent again.
    f.handle(&events[1]).await.expect("retry");
    assert_eq!(f.sent(), (1, 1));
    let entry = f.ledger.get(email_id).await.expect("get").expect("entry");
    assert_eq!((entry.status, entry.attempt), (Status::Sent, 2));

    f.handle(&events[1]).await.expect("redelivery");
    assert_eq!(f.sent(), (1, 1));
}

/// An error and its sources, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        text.push_str(&format!(": {cause}"));
        next = cause.source();
    }
    text
}

#[tokio::test]
async fn a_refused_send_is_a_permanent_failure() {
    let f = Fakes::new();
    let events = f.quote(&Customer::email_only(), &[issued(100_000)]).await;
    f.email.fail_next(SendError::Rejected {
        provider: "SES",
        message: "MessageRejected: Email address is not verified".into(),
    });
    let err = f.handle(&events[1]).await.expect_err("refused");
    assert!(
        !err.is_transient(),
        "dead-lettered after the bounded attempts: {err}"
    );
    assert_eq!(f.status(&events[1], Channel::Email).await, Status::Failed);
}

/// An SES throttle lasting far longer than the worker's old retry budget (5 attempts from a
/// 100 ms base, about 3 s, then the event was dead-lettered and the customer never told): on
/// the real worker and paused clock, the event waits, the e-mail goes out once SES accepts
/// again, exactly once, and nothing is dead-lettered.
#[tokio::test(start_paused = true)]
async fn a_long_ses_throttle_is_waited_out_and_the_email_is_sent_once() {
    let ledger = Arc::new(InMemoryNotificationLedger::new(Duration::from_secs(120)));
    let email = Arc::new(InMemoryEmailSender::new());
    let sms = Arc::new(InMemorySmsSender::new());
    const THROTTLED_SENDS: u32 = 30;
    for _ in 0..THROTTLED_SENDS {
        email.fail_next(SendError::Throttled {
            provider: "SES",
            message: "TooManyRequestsException: Maximum sending rate exceeded".into(),
        });
    }
    let notifier = Arc::new(Notifier::new(ledger.clone(), email.clone(), sms.clone()));
    let stream = InMemoryStream::new(1);
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (relay, relay_task) = Relay::new(
        store.clone(),
        Arc::new(InMemoryStreamSink::new(stream.clone())),
        RelayConfig::default(),
    )
    .spawn(shutdown.clone());
    let quote_pipeline::service::EmbeddedWorker {
        worker,
        dead_letters,
        ..
    } = embedded_worker(notifier, stream, store.clone(), relay.clone());
    let metrics = worker.metrics();
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));

    let (quote_id, requested) = quote_requested(Customer::email_only().request());
    let appended = store
        .append(AppendRequest {
            stream_id: quote_id.stream_id(),
            expected_version: 0,
            events: vec![new_event(&requested), new_event(&issued(100_000))],
            idempotency: None,
            customer_id: Some("cust-42".into()),
        })
        .await
        .expect("append");
    relay.notify(appended.events.clone());
    for _ in 0..1_200 {
        if !email.sent().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(email.sent().len(), 1, "sent once SES accepted again");
    assert!(dead_letters.letters().is_empty(), "nothing dead-lettered");
    let entry = ledger
        .get(notification_id(appended.events[1].event_id, Channel::Email))
        .await
        .expect("get")
        .expect("entry");
    assert_eq!(
        (entry.status, entry.attempt),
        (Status::Sent, THROTTLED_SENDS + 1)
    );
    assert!(metrics.snapshot().retries_transient >= u64::from(THROTTLED_SENDS));
    // Redelivery after the fact sends nothing twice.
    relay.notify(appended.events);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(email.sent().len(), 1);
    shutdown.cancel();
    worker_task.await.expect("worker");
    relay_task.await.expect("relay");
}

#[tokio::test]
async fn a_send_that_may_have_gone_out_is_never_retried() {
    let f = Fakes::new();
    let events = f.quote(&Customer::unique(), &[issued(100_000)]).await;
    f.sms.fail_next(SendError::Unknown {
        provider: "SNS",
        message: "operation timeout".into(),
    });
    f.handle(&events[1]).await.expect("nothing to retry");
    f.handle(&events[1]).await.expect("redelivery");
    assert!(f.sms.sent().is_empty(), "assumed sent: never resent");
    assert_eq!(f.status(&events[1], Channel::Sms).await, Status::Unknown);
    assert_eq!(f.email.sent().len(), 1);
}

#[tokio::test]
async fn a_crashed_senders_claim_goes_stale_and_is_assumed_sent() {
    let f = Fakes::with_claim_timeout(Duration::from_millis(300));
    let events = f.quote(&Customer::email_only(), &[issued(100_000)]).await;
    // A sender claimed it and died before recording anything.
    f.claim_email_elsewhere(&events[1]).await;
    let started = std::time::Instant::now();
    f.deliver(&events[1]).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited for the claim to go stale"
    );
    assert!(f.email.sent().is_empty(), "never sent twice");
    assert_eq!(f.status(&events[1], Channel::Email).await, Status::Unknown);
}

#[tokio::test]
async fn a_delivery_in_progress_elsewhere_is_waited_for() {
    let f = Fakes::with_claim_timeout(Duration::from_secs(30));
    let customer = Customer::email_only();

    // Another delivery sends it and records success a moment later.
    let events = f.quote(&customer, &[issued(100_000)]).await;
    let sent = Outcome::Sent {
        provider_message_id: "elsewhere".into(),
    };
    let other = f.email_claimed_elsewhere(&events[1], sent).await;
    f.deliver(&events[1]).await;
    other.await.expect("other");
    assert!(f.email.sent().is_empty());

    // Another delivery failed: this one sends.
    let events = f.quote(&customer, &[issued(100_000)]).await;
    let failed = Outcome::Failed {
        error: "refused".into(),
    };
    let other = f.email_claimed_elsewhere(&events[1], failed).await;
    f.deliver(&events[1]).await;
    other.await.expect("other");
    assert_eq!(f.email.sent().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// On moto (SES v2, SNS) and moto's DynamoDB.
// ---------------------------------------------------------------------------------------------

/// What moto recorded as sent, from its model dump.
#[derive(Debug)]
struct MotoSent {
    /// `(to addresses, subject, body, message id)` of every e-mail.
    emails: Vec<(Vec<String>, String, String, String)>,
    /// `(phone number, text, message id)` of every SMS.
    sms: Vec<(String, String, String)>,
}

impl MotoSent {
    /// Reads `GET {AWS_ENDPOINT_URL}/moto-api/data.json`: `ses.Message` (SES v1 and v2 share
    /// the backend) and `sns.SMS`.
    async fn read() -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (moto)");
        let data: serde_json::Value = reqwest::get(format!(
            "{}/moto-api/data.json",
            endpoint.trim_end_matches('/')
        ))
        .await
        .expect("moto data")
        .json()
        .await
        .expect("moto data json");
        let text =
            |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
        let emails = data["ses"]["Message"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let to = m["destinations"]["ToAddresses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect();
                (to, text(m, "subject"), text(m, "body"), text(m, "id"))
            })
            .collect();
        let sms = data["sns"]["SMS"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    text(m, "phone_number"),
                    text(m, "message"),
                    text(m, "message_id"),
                )
            })
            .collect();
        Self { emails, sms }
    }

    fn emails_to(&self, address: &str) -> Vec<&(Vec<String>, String, String, String)> {
        self.emails
            .iter()
            .filter(|(to, ..)| to.iter().any(|a| a == address))
            .collect()
    }

    fn sms_to(&self, phone: &str) -> Vec<&(String, String, String)> {
        self.sms.iter().filter(|(to, ..)| to == phone).collect()
    }
}

/// The notifier on the emulators.
struct Aws {
    setup: Setup,
    ses: aws_sdk_sesv2::Client,
    from: String,
    ledger: Arc<DynamoNotificationLedger>,
}

impl Deref for Aws {
    type Target = Setup;

    fn deref(&self) -> &Setup {
        &self.setup
    }
}

impl Aws {
    /// The notifier on the emulators, its ledger in a fresh table, sending from a fresh address
    /// (an SES identity only when `verified`).
    async fn new(verified: bool) -> Self {
        let sdk = testkit::aws_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = testkit::unique_name("notifications");
        create_notifications_table(&dynamo, &table)
            .await
            .expect("table");
        let ses = aws_sdk_sesv2::Client::new(&sdk);
        let from = format!("{}@quotes.example.com", testkit::unique_name("noreply"));
        if verified {
            assert_eq!(
                create_ses_identity(&ses, &from).await.expect("identity"),
                Created::Created
            );
            assert_eq!(
                create_ses_identity(&ses, &from)
                    .await
                    .expect("identity again"),
                Created::Existed
            );
        }
        let ledger = Arc::new(DynamoNotificationLedger::new(
            dynamo,
            table,
            Duration::from_secs(60),
        ));
        let notifier = Notifier::new(
            ledger.clone(),
            Arc::new(SesEmailSender::from_sdk_config(
                &sdk,
                quote_domain::types::Email::parse(&from).expect("from"),
            )),
            Arc::new(SnsSmsSender::from_sdk_config(&sdk)),
        );
        Self {
            setup: Setup::new(notifier),
            ses,
            from,
            ledger,
        }
    }

    /// The outcome the ledger recorded for the notification of `event` on `channel`.
    async fn outcome(&self, event: &EventEnvelope, channel: Channel) -> Option<Outcome> {
        self.ledger
            .get(notification_id(event.event_id, channel))
            .await
            .expect("get")
            .expect("entry")
            .outcome
    }
}

#[tokio::test]
async fn moto_records_one_email_and_one_sms_per_issued_quote_however_often_delivered() {
    let aws = Aws::new(true).await;
    let customer = Customer::unique();
    let events = aws.quote(&customer, &[issued(123_456)]).await;
    aws.deliver(&events[1]).await;
    aws.handle(&events[1]).await.expect("redelivery");

    let sent = MotoSent::read().await;
    let emails = sent.emails_to(&customer.email);
    assert_eq!(emails.len(), 1, "{emails:?}");
    let (_, subject, body, message_id) = emails[0];
    assert!(subject.contains("$1,234.56"), "{subject}");
    assert!(body.contains("Valid until:    2026-12-27 (UTC)"), "{body}");
    let texts = sent.sms_to(&customer.phone);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].1.contains("$1,234.56/year"), "{}", texts[0].1);
    assert!(texts[0].1.chars().count() <= 160);

    // The ledger keeps the providers' message ids.
    assert_eq!(
        aws.outcome(&events[1], Channel::Email).await,
        Some(Outcome::Sent {
            provider_message_id: message_id.clone()
        })
    );
    assert_eq!(
        aws.outcome(&events[1], Channel::Sms).await,
        Some(Outcome::Sent {
            provider_message_id: texts[0].2.clone()
        })
    );
}

#[tokio::test]
async fn moto_records_nothing_for_a_premium_over_the_ceiling() {
    let aws = Aws::new(true).await;
    let customer = Customer::unique();
    let events = aws.quote(&customer, &[issued(250_000)]).await;
    aws.deliver(&events[1]).await;
    let sent = MotoSent::read().await;
    assert!(sent.emails_to(&customer.email).is_empty());
    assert!(sent.sms_to(&customer.phone).is_empty());
}

#[tokio::test]
async fn moto_records_the_email_of_a_declined_quote_with_its_reasons() {
    let aws = Aws::new(true).await;
    let customer = Customer::email_only();
    let events = aws
        .quote(
            &customer,
            &[declined(&[
                "driver VA T12345678: licence suspended",
                "vehicle 1HGCM82633A004352: salvage title",
            ])],
        )
        .await;
    aws.deliver(&events[1]).await;
    let sent = MotoSent::read().await;
    let emails = sent.emails_to(&customer.email);
    assert_eq!(emails.len(), 1, "{emails:?}");
    let (_, subject, body, _) = emails[0];
    assert!(subject.ends_with("was declined"), "{subject}");
    assert!(body.contains("  - driver VA T12345678: licence suspended\n  - vehicle 1HGCM82633A004352: salvage title"), "{body}");
    assert!(sent.sms_to(&customer.phone).is_empty());
}

#[tokio::test]
async fn an_unverified_sender_fails_and_the_retry_after_bootstrap_sends() {
    let aws = Aws::new(false).await;
    let customer = Customer::email_only();
    let events = aws.quote(&customer, &[issued(100_000)]).await;
    let err = aws
        .handle(&events[1])
        .await
        .expect_err("SES refuses an unverified sender");
    assert!(chain(&err).contains("not verified"), "{}", chain(&err));
    assert!(!err.is_transient(), "a refusal is permanent");
    let id = notification_id(events[1].event_id, Channel::Email);
    let entry = aws.ledger.get(id).await.expect("get").expect("entry");
    assert_eq!(entry.status, Status::Failed);
    assert!(MotoSent::read().await.emails_to(&customer.email).is_empty());

    create_ses_identity(&aws.ses, &aws.from)
        .await
        .expect("identity");
    aws.handle(&events[1]).await.expect("retry");
    aws.handle(&events[1]).await.expect("redelivery");
    assert_eq!(MotoSent::read().await.emails_to(&customer.email).len(), 1);
    let entry = aws.ledger.get(id).await.expect("get").expect("entry");
    assert_eq!((entry.status, entry.attempt), (Status::Sent, 2));
}

/// A rewind replays the stream through a running notifier (`quotes consumer rewind`): every
/// outcome is handled again, and nothing is sent twice (the ledger holds each notification).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_notifier_sends_nothing_again() {
    use kinesis_consumer::lease_table::InMemoryLeaseTable;
    use kinesis_consumer::rewind::{rewind, RewindTarget};
    use kinesis_consumer::{Checkpoint, CheckpointPolicy, LeaseTable, WorkerConfig};
    use std::sync::atomic::Ordering;

    let ledger = Arc::new(InMemoryNotificationLedger::new(Duration::from_secs(60)));
    let email = Arc::new(InMemoryEmailSender::new());
    let sms = Arc::new(InMemorySmsSender::new());
    let notifier = Arc::new(Notifier::new(ledger.clone(), email.clone(), sms.clone()));
    let stream = InMemoryStream::new(1);
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (relay, relay_task) = Relay::new(
        store.clone(),
        Arc::new(InMemoryStreamSink::new(stream.clone())),
        RelayConfig::default(),
    )
    .spawn(shutdown.clone());
    let table = Arc::new(InMemoryLeaseTable::new());
    let config = WorkerConfig {
        worker_id: "notifier-1".into(),
        lease_duration: Duration::from_secs(3),
        renew_interval: Duration::from_millis(500),
        scan_interval: Duration::from_millis(100),
        checkpoint: CheckpointPolicy {
            every_records: Some(1),
            every: None,
        },
        ..WorkerConfig::new("notifier")
    };
    let worker = quote_pipeline::service::worker(
        notifier,
        config,
        table.clone(),
        Arc::new(stream.clone()),
        store.clone(),
        relay.clone(),
    );
    let metrics = worker.metrics();
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));

    for cents in [100_000, 120_000, 90_000] {
        let (quote_id, requested) = quote_requested(Customer::unique().request());
        let appended = store
            .append(AppendRequest {
                stream_id: quote_id.stream_id(),
                expected_version: 0,
                events: vec![new_event(&requested), new_event(&issued(cents))],
                idempotency: None,
                customer_id: Some("cust-42".into()),
            })
            .await
            .expect("append");
        relay.notify(appended.events);
    }
    let records = || stream.records("shardId-000000000000");
    let caught_up = || async {
        let last = records().last().map(|r| r.sequence_number.clone());
        let lease = table.list().await.expect("leases").into_iter().next();
        lease.is_some_and(|l| Some(l.checkpoint) == last.clone().map(Checkpoint::Sequence))
    };
    for _ in 0..300 {
        if records().len() == 6 && caught_up().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        caught_up().await,
        "the first pass checkpointed the last record"
    );
    assert_eq!((email.sent().len(), sms.sent().len()), (3, 3));
    let processed = metrics.records_processed.load(Ordering::Relaxed);

    let steps = rewind(table.as_ref(), &RewindTarget::TrimHorizon, None, false)
        .await
        .expect("rewind");
    assert!(steps[0].replays, "{steps:?}");
    for _ in 0..300 {
        if metrics.records_processed.load(Ordering::Relaxed) >= processed + 6 && caught_up().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.records_processed.load(Ordering::Relaxed) >= processed + 6,
        "every record was handled again"
    );
    assert!(
        caught_up().await,
        "the replay checkpointed the last record again"
    );
    assert_eq!(
        (email.sent().len(), sms.sent().len()),
        (3, 3),
        "nothing sent twice"
    );
    shutdown.cancel();
    worker_task.await.expect("worker");
    relay_task.await.expect("relay");
}
