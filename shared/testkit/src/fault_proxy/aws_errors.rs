//! The error answers the fault proxy injects, as DynamoDB and Kinesis send them.
//!
//! Both are JSON protocols (`awsJson1_0` for DynamoDB, `awsJson1_1` for Kinesis): the error's
//! name travels in the body's `__type` (DynamoDB prefixes it with a namespace, `…#Name`;
//! Kinesis does not) and the text in `message`. The Rust SDK reads the code from the
//! `x-amzn-errortype` header or else from `code`/`__type`, strips the namespace, and maps it to
//! the operation's typed error (`UpdateItemError::ProvisionedThroughputExceededException`); its
//! standard retry mode treats `ProvisionedThroughputExceededException`, `ThrottlingException`
//! and `LimitExceededException` as throttling, and 500/502/503/504 as transient, whatever the
//! body. The tests in `tests/fault_proxy.rs` check that the real clients parse these answers
//! into the typed errors.

use serde::{Deserialize, Serialize};

/// The service behind the proxy, from the `X-Amz-Target` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `DynamoDB_20120810.*`
    DynamoDb,
    /// `Kinesis_20131202.*`
    Kinesis,
}

impl Service {
    /// The service a target belongs to (`None`: neither, e.g. a missing header).
    pub fn of_target(target: &str) -> Option<Self> {
        if target.starts_with("DynamoDB_") {
            Some(Service::DynamoDb)
        } else if target.starts_with("Kinesis_") {
            Some(Service::Kinesis)
        } else {
            None
        }
    }

    /// The content type of the service's JSON answers.
    pub fn content_type(self) -> &'static str {
        match self {
            Service::DynamoDb => "application/x-amz-json-1.0",
            Service::Kinesis => "application/x-amz-json-1.1",
        }
    }
}

/// An AWS error the proxy can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsError {
    /// 400 `ProvisionedThroughputExceededException`: a table's or a shard's throughput
    /// exceeded (DynamoDB and Kinesis).
    ProvisionedThroughputExceeded,
    /// 400 `ThrottlingException`: DynamoDB's request-rate throttle (control plane, and data
    /// plane on account limits).
    Throttling,
    /// 400 `LimitExceededException`: Kinesis's per-stream and per-account call limits
    /// (`GetShardIterator`, `ListShards`, `SubscribeToShard`, `UpdateShardCount`, …).
    LimitExceeded,
    /// 500 `InternalServerError` (DynamoDB) / `InternalFailureException` (Kinesis).
    InternalServerError,
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
}

impl AwsError {
    /// The error's code (the name the SDK's classifiers and typed errors use).
    pub fn code(self) -> &'static str {
        match self {
            AwsError::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            AwsError::Throttling => "ThrottlingException",
            AwsError::LimitExceeded => "LimitExceededException",
            AwsError::InternalServerError => "InternalServerError",
            AwsError::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            AwsError::InternalServerError => 500,
            AwsError::ServiceUnavailable => 503,
            _ => 400,
        }
    }

    /// The body `service` sends for this error.
    pub fn body(self, service: Service) -> String {
        let (kind, message) = match (service, self) {
            (Service::DynamoDb, AwsError::ProvisionedThroughputExceeded) => (
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API.",
            ),
            (Service::DynamoDb, AwsError::Throttling) => (
                "com.amazon.coral.availability#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ),
            (Service::DynamoDb, AwsError::LimitExceeded) => (
                "com.amazonaws.dynamodb.v20120810#LimitExceededException",
                "Too many operations for a given subscriber.",
            ),
            (Service::DynamoDb, AwsError::InternalServerError) => (
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error",
            ),
            (Service::DynamoDb, AwsError::ServiceUnavailable) => (
                "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                "The service is currently unavailable or busy.",
            ),
            (Service::Kinesis, AwsError::ProvisionedThroughputExceeded) => (
                "ProvisionedThroughputExceededException",
                "Rate exceeded for shard in stream under account 000000000000.",
            ),
            (Service::Kinesis, AwsError::Throttling) => {
                ("ThrottlingException", "Rate exceeded for the account.")
            }
            (Service::Kinesis, AwsError::LimitExceeded) => (
                "LimitExceededException",
                "Rate exceeded for stream under account 000000000000.",
            ),
            (Service::Kinesis, AwsError::InternalServerError) => {
                ("InternalFailureException", "Internal service failure.")
            }
            (Service::Kinesis, AwsError::ServiceUnavailable) => (
                "ServiceUnavailable",
                "The service is currently unavailable or busy.",
            ),
        };
        serde_json::json!({ "__type": kind, "message": message }).to_string()
    }
}

/// The error code Kinesis puts on a refused record of a `PutRecords` answer.
pub const RECORD_THROTTLED: &str = "ProvisionedThroughputExceededException";

/// The message Kinesis puts on a refused record of a `PutRecords` answer.
pub const RECORD_THROTTLED_MESSAGE: &str =
    "Rate exceeded for shard in stream under account 000000000000.";
