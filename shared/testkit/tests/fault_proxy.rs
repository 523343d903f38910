//! The fault proxy with the real SDK clients in front of a stand-in backend (an in-process
//! HTTP server that answers like DynamoDB and Kinesis and counts what reached it): the injected
//! errors parse into the SDK's typed errors, the SDK's retry policy treats them as AWS's
//! would, `PutRecords` is refused in part the way Kinesis does it, dropped and hung
//! connections surface as the SDK's dispatch and timeout errors, and scripts drive it over HTTP.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::operation::list_shards::ListShardsError;
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use axum::body::Bytes;
use axum::http::HeaderMap;
use testkit::fault_proxy::{AwsError, Fault, FaultProxy, Rule};

const UPDATE_ITEM: &str = "DynamoDB_20120810.UpdateItem";
const PUT_RECORDS: &str = "Kinesis_20131202.PutRecords";
const LIST_SHARDS: &str = "Kinesis_20131202.ListShards";

/// What reached the stand-in backend: per target, the request bodies.
type Seen = Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>;

/// Starts the stand-in backend; returns its URL and what it saw.
async fn backend() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let seen = recorded.clone();
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let answer = match target.as_str() {
                PUT_RECORDS => {
                    let records: Vec<serde_json::Value> = request["Records"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .map(|(i, _)| {
                            serde_json::json!({"SequenceNumber": format!("{}", 1000 + i),
                                               "ShardId": "shardId-000000000000"})
                        })
                        .collect();
                    serde_json::json!({"FailedRecordCount": 0, "Records": records})
                }
                LIST_SHARDS => serde_json::json!({"Shards": []}),
                _ => serde_json::json!({}),
            };
            seen.lock()
                .expect("seen")
                .entry(target)
                .or_default()
                .push(request);
            (
                [("content-type", "application/x-amz-json-1.1")],
                answer.to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn count(seen: &Seen, target: &str) -> usize {
    seen.lock().expect("seen").get(target).map_or(0, Vec::len)
}

/// SDK configuration for `endpoint`: `attempts` per call, fast backoff, a short attempt
/// timeout, static credentials.
async fn sdk(endpoint: &str, attempts: u32) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .load()
        .await
}

async fn update_item(
    client: &aws_sdk_dynamodb::Client,
) -> Result<(), aws_sdk_dynamodb::error::SdkError<UpdateItemError>> {
    client
        .update_item()
        .table_name("leases")
        .key("leaseKey", AttributeValue::S("shardId-000000000001".into()))
        .update_expression("SET leaseCounter = leaseCounter + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .map(|_| ())
}

fn entries(n: usize) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("pk-{i}"))
                .data(Blob::new(format!("record-{i}")))
                .build()
                .expect("entry")
        })
        .collect()
}

#[tokio::test]
async fn dynamodb_throttling_and_server_errors_parse_into_the_typed_errors() {
    let (upstream, seen) = backend().await;
    let proxy = FaultProxy::start(&upstream).await.expect("proxy");
    let client = aws_sdk_dynamodb::Client::new(&sdk(&proxy.url(), 1).await);
    let cases = [
        (
            AwsError::ProvisionedThroughputExceeded,
            "ProvisionedThroughputExceededException",
        ),
        (AwsError::Throttling, "ThrottlingException"),
        (AwsError::InternalServerError, "InternalServerError"),
    ];
    for (error, code) in cases {
        let id = proxy.add(Rule::new(Fault::Error { error }).operation(UPDATE_ITEM));
        let err = update_item(&client)
            .await
            .expect_err("injected")
            .into_service_error();
        let typed = match &err {
            UpdateItemError::ProvisionedThroughputExceededException(_) => {
                "ProvisionedThroughputExceededException"
            }
            UpdateItemError::ThrottlingException(_) => "ThrottlingException",
            UpdateItemError::InternalServerError(_) => "InternalServerError",
            other => panic!("{code}: not a typed error: {other:?}"),
        };
        assert_eq!(typed, code);
        assert!(proxy.remove(id));
    }
    assert_eq!(
        count(&seen, UPDATE_ITEM),
        0,
        "an injected error never reaches the backend"
    );
    update_item(&client).await.expect("forwarded");
    assert_eq!(count(&seen, UPDATE_ITEM), 1);
    let stats = proxy.stats();
    assert_eq!(stats.injected_for(UPDATE_ITEM), 3);
    assert_eq!(stats.forwarded[UPDATE_ITEM], 1);
}

#[tokio::test]
async fn kinesis_throttling_errors_parse_into_the_typed_errors() {
    let (upstream, _seen) = backend().await;
    let proxy = FaultProxy::start(&upstream).await.expect("proxy");
    let client = aws_sdk_kinesis::Client::new(&sdk(&proxy.url(), 1).await);
    proxy.add(
        Rule::new(Fault::Error {
            error: AwsError::ProvisionedThroughputExceeded,
        })
        .operation(PUT_RECORDS),
    );
    proxy.add(
        Rule::new(Fault::Error {
            error: AwsError::LimitExceeded,
        })
        .operation(LIST_SHARDS),
    );
    let err = client
        .put_records()
        .stream_name("s")
        .set_records(Some(entries(2)))
        .send()
        .await
        .expect_err("throttled")
        .into_service_error();
    assert!(
        matches!(
            err,
            PutRecordsError::ProvisionedThroughputExceededException(_)
        ),
        "{err:?}"
    );
    let err = client
        .list_shards()
        .stream_name("s")
        .send()
        .await
        .expect_err("limited")
        .into_service_error();
    assert!(
        matches!(err, ListShardsError::LimitExceededException(_)),
        "{err:?}"
    );
    proxy.clear();
    proxy.add(
        Rule::new(Fault::Error {
            error: AwsError::InternalServerError,
        })
        .operation(PUT_RECORDS),
    );
    let err = client
        .put_records()
        .stream_name("s")
        .set_records(Some(entries(1)))
        .send()
        .await
        .expect_err("500")
        .into_service_error();
    assert!(
        matches!(err, PutRecordsError::InternalFailureException(_)),
        "{err:?}"
    );
}

/// The SDK's standard retry mode retries every injected error (throttling by its code, 5xx by
/// its status): with a limit below the attempts, the call succeeds.
#[tokio::test]
async fn the_sdk_retries_throttling_and_5xx_through_the_proxy() {
    let (upstream, seen) = backend().await;
    let proxy = FaultProxy::start(&upstream).await.expect("proxy");
    let client = aws_sdk_dynamodb::Client::new(&sdk(&proxy.url(), 4).await);
    for error in [
        AwsError::ProvisionedThroughputExceeded,
        AwsError::Throttling,
        AwsError::InternalServerError,
        AwsError::ServiceUnavailable,
    ] {
        proxy.clear();
        proxy.add(
            Rule::new(Fault::Error { error })
                .operation(UPDATE_ITEM)
                .limit(3),
        );
        update_item(&client)
            .await
            .unwrap_or_else(|e| panic!("{error:?} retried: {e:?}"));
    }
    assert_eq!(count(&seen, UPDATE_ITEM), 4);
    assert_eq!(proxy.stats().injected_for(UPDATE_ITEM), 12);
}

#[tokio::test]
async fn put_records_is_refused_in_part_like_kinesis_does() {
    let (upstream, seen) = backend().await;
    let proxy = FaultProxy::start(&upstream).await.expect("proxy");
    let client = aws_sdk_kinesis::Client::new(&sdk(&proxy.url(), 1).await);
    proxy.add(Rule::new(Fault::PartialFailure { fraction: 0.3 }).operation(PUT_RECORDS));
    let output = client
        .put_records()
        .stream_name("s")
        .set_records(Some(entries(10)))
        .send()
        .await
        .expect("a partial failure is a 200");
    assert_eq!(output.failed_record_count(), Some(3));
    let refused: Vec<usize> = output
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code() == Some("ProvisionedThroughputExceededException"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(refused.len(), 3);
    assert_eq!(output.records().len(), 10);
    // Only the accepted records reached the backend, in the request's order.
    let forwarded: Vec<String> = seen.lock().expect("seen")[PUT_RECORDS][0]["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["PartitionKey"].as_str().expect("key").to_owned())
        .collect();
    let expected: Vec<String> = (0..10)
        .filter(|i| !refused.contains(i))
        .map(|i| format!("pk-{i}"))
        .collect();
    assert_eq!(forwarded, expected);
}

#[tokio::test]
async fn dropped_and_hung_connections_are_dispatch_and_timeout_errors() {
    let (upstream, seen) = backend().await;
    let proxy = FaultProxy::start(&upstream).await.expect("proxy");
    let client = aws_sdk_dynamodb::Client::new(&sdk(&proxy.url(), 1).await);

    let id = proxy.add(Rule::new(Fault::Drop).operation(UPDATE_ITEM));
    let err = update_item(&client).await.expect_err("dropped");
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "{err:?}"
    );
    assert_eq!(count(&seen, UPDATE_ITEM), 0);
    proxy.remove(id);

    // The backend applies the call; the caller never hears back.
    let id = proxy.add(Rule::new(Fault::DropResponse).operation(UPDATE_ITEM));
    let err = update_item(&client).await.expect_err("answer dropped");
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "{err:?}"
    );
    assert_eq!(count(&seen, UPDATE_ITEM), 1);
    proxy.remove(id);

    // Held longer than the SDK's attempt timeout (500 ms).
    proxy.add(Rule::new(Fault::Hang { ms: 5_000 }).operation(UPDATE_ITEM));
    let err = update_item(&client).await.expect_err("hung");
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    assert_eq!(count(&seen, UPDATE_ITEM), 1);
}

#[tokio::test]
async fn scripts_drive_the_proxy_over_http() {
    let (upstream, _seen) = backend().await;
    let proxy = FaultProxy::start(&upstream).await.expect("proxy");
    let http = reqwest::Client::new();
    let control = format!("{}/__faults", proxy.url());
    let created: serde_json::Value = http
        .post(format!("{control}/rules"))
        .body(
            r#"[{"operations": ["DynamoDB_20120810."], "fault": {"kind": "error",
                 "error": "throttling"}, "rate": 1.0, "for_ms": 60000},
                {"fault": {"kind": "latency", "ms": 10}}]"#,
        )
        .send()
        .await
        .expect("post rules")
        .json()
        .await
        .expect("ids");
    assert_eq!(created["ids"], serde_json::json!([1, 2]));
    let client = aws_sdk_dynamodb::Client::new(&sdk(&proxy.url(), 1).await);
    let err = update_item(&client)
        .await
        .expect_err("throttled")
        .into_service_error();
    assert!(err.is_throttling_exception(), "{err:?}");

    let state: serde_json::Value = http
        .get(&control)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("state");
    assert_eq!(state["rules"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        state["stats"]["injected"][UPDATE_ITEM]["ThrottlingException"],
        serde_json::json!(1)
    );
    let bad = http
        .post(format!("{control}/rules"))
        .body(r#"{"fault": {"kind": "nonsense"}}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    let deleted = http
        .delete(format!("{control}/rules/1"))
        .send()
        .await
        .expect("delete one");
    assert_eq!(deleted.status(), 200);
    http.delete(format!("{control}/rules"))
        .send()
        .await
        .expect("delete all");
    assert!(proxy.rules().is_empty());
    update_item(&client).await.expect("forwarded again");
}
