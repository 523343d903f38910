//! Sending e-mails (SES v2 `SendEmail`, simple content) and SMS (SNS `Publish` to a phone
//! number), and in-memory fakes for tests.
//!
//! The AWS clients are built from the SDK's standard configuration (`AWS_ENDPOINT_URL`, …; moto
//! serves both services), but make **one attempt per send**: the SDK's own retries would
//! resend a message whose first attempt timed out after reaching the provider. Every resend is
//! the notifier's decision, through the ledger ([`crate::ledger`]).
//!
//! A failed send says whether the message may nevertheless have gone out
//! ([`SendError::may_have_been_sent`]): not when the provider refused it with a 4xx (throttling
//! included) or could not be connected to at all; possibly when the provider failed with a 5xx
//! (it may have accepted the message before failing) or the request was sent and no usable
//! answer came back (a timeout, a connection dropped mid-request, an unreadable answer). And it
//! says whether waiting can help ([`SendError::is_transient`]): throttling and an unreachable
//! provider are retried by the worker until they pass; a refusal is permanent. The AWS errors
//! are classified by `quote_runtime::aws_error`, like every other adapter's.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sns::types::MessageAttributeValue;
use quote_domain::types::{Email, PhoneE164};
use quote_runtime::aws_error::AwsFailure;

use crate::rules::{redact_email, redact_phone};
use crate::Created;

/// Why a message was not (known to be) sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider throttled the request (a throttling error or HTTP 429): not sent; it
    /// passes by waiting.
    #[error("{provider} throttled the message: {message}")]
    Throttled {
        /// `SES` or `SNS`.
        provider: &'static str,
        /// The provider's error.
        message: String,
    },
    /// The provider refused the message (invalid address, unverified sender, …): not sent,
    /// and sending it again cannot help.
    #[error("{provider} refused the message: {message}")]
    Rejected {
        /// `SES` or `SNS`.
        provider: &'static str,
        /// The provider's error.
        message: String,
    },
    /// No connection could be made (refused, name resolution, connect timeout): not sent.
    #[error("{provider} could not be reached: {message}")]
    Unreachable {
        /// `SES` or `SNS`.
        provider: &'static str,
        /// The transport's error.
        message: String,
    },
    /// The request went out but no usable answer came back, or the provider failed with a
    /// 5xx: it may have been sent.
    #[error("{provider} gave no usable answer; the message may have been sent: {message}")]
    Unknown {
        /// `SES` or `SNS`.
        provider: &'static str,
        /// The transport's error.
        message: String,
    },
}

impl SendError {
    /// Whether the message may have gone out despite the error.
    pub fn may_have_been_sent(&self) -> bool {
        matches!(self, SendError::Unknown { .. })
    }

    /// Whether sending again later may succeed (throttled, or the provider unreachable); only
    /// meaningful for a message that was not sent.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SendError::Throttled { .. } | SendError::Unreachable { .. }
        )
    }
}

/// Whether a dispatch failure happened before any byte of the request left: connection
/// refused or unroutable, name resolution, or the connect timeout.
fn never_connected(err: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            ) {
                return true;
            }
        }
        let text = e.to_string();
        if text.starts_with("HTTP connect timeout")
            || text.contains("dns error")
            || text.contains("failed to lookup address")
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Classifies an SDK error of `provider` (the SES v2 and SNS crates share the error type):
/// throttling is not sent (and transient), any other refusal is not sent (permanent), a 5xx
/// may have been sent (the provider may have accepted the message before failing), and so may
/// anything that went wrong after the request left.
fn classify<E>(provider: &'static str, err: SdkError<E>) -> SendError
where
    E: StdError + ProvideErrorMetadata + 'static,
{
    let message = DisplayErrorContext(&err).to_string().replace('\n', " ");
    match &err {
        SdkError::ConstructionFailure(_) => SendError::Rejected { provider, message },
        SdkError::DispatchFailure(_) if never_connected(&err) => {
            SendError::Unreachable { provider, message }
        }
        SdkError::ServiceError(_) => match AwsFailure::of(&err) {
            AwsFailure::Throttled => SendError::Throttled { provider, message },
            AwsFailure::Rejected => SendError::Rejected { provider, message },
            AwsFailure::ServerError | AwsFailure::Timeout | AwsFailure::Dispatch => {
                SendError::Unknown { provider, message }
            }
        },
        _ => SendError::Unknown { provider, message },
    }
}

/// Sends e-mails.
#[async_trait]
pub trait EmailSender: Send + Sync + std::fmt::Debug {
    /// Sends a plain-text e-mail; the provider's message id.
    async fn send_email(&self, to: &Email, subject: &str, body: &str) -> Result<String, SendError>;
}

/// Sends SMS.
#[async_trait]
pub trait SmsSender: Send + Sync + std::fmt::Debug {
    /// Sends a text message; the provider's message id.
    async fn send_sms(&self, to: &PhoneE164, text: &str) -> Result<String, SendError>;
}

/// The SDK configuration of a sender client: the shared one, with a single attempt.
fn single_attempt(sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
    sdk.to_builder()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build()
}

/// E-mails through SES v2, from one verified identity.
#[derive(Debug, Clone)]
pub struct SesEmailSender {
    client: aws_sdk_sesv2::Client,
    from: Email,
}

impl SesEmailSender {
    /// A sender using `client` as it is (tests, custom clients), from `from`.
    pub fn new(client: aws_sdk_sesv2::Client, from: Email) -> Self {
        Self { client, from }
    }

    /// A sender whose client is built from `sdk` with a single attempt per send.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, from: Email) -> Self {
        Self::new(aws_sdk_sesv2::Client::new(&single_attempt(sdk)), from)
    }

    /// The sender address.
    pub fn from_address(&self) -> &Email {
        &self.from
    }
}

fn utf8(data: &str) -> Result<Content, SendError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| SendError::Rejected {
            provider: "SES",
            message: e.to_string(),
        })
}

#[async_trait]
impl EmailSender for SesEmailSender {
    #[tracing::instrument(name = "ses.send_email", skip_all, fields(to = %redact_email(to), from = %redact_email(&self.from)))]
    async fn send_email(&self, to: &Email, subject: &str, body: &str) -> Result<String, SendError> {
        let content = EmailContent::builder()
            .simple(
                Message::builder()
                    .subject(utf8(subject)?)
                    .body(Body::builder().text(utf8(body)?).build())
                    .build(),
            )
            .build();
        let output = self
            .client
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(Destination::builder().to_addresses(to.as_str()).build())
            .content(content)
            .send()
            .await
            .map_err(|e| classify("SES", e))?;
        Ok(output.message_id.unwrap_or_default())
    }
}

/// SMS through SNS (transactional messages).
#[derive(Debug, Clone)]
pub struct SnsSmsSender {
    client: aws_sdk_sns::Client,
}

impl SnsSmsSender {
    /// A sender using `client` as it is.
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }

    /// A sender whose client is built from `sdk` with a single attempt per send.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_sns::Client::new(&single_attempt(sdk)))
    }
}

#[async_trait]
impl SmsSender for SnsSmsSender {
    #[tracing::instrument(name = "sns.publish_sms", skip_all, fields(to = %redact_phone(to)))]
    async fn send_sms(&self, to: &PhoneE164, text: &str) -> Result<String, SendError> {
        let transactional = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .map_err(|e| SendError::Rejected {
                provider: "SNS",
                message: e.to_string(),
            })?;
        let output = self
            .client
            .publish()
            .phone_number(to.as_str())
            .message(text)
            .message_attributes("AWS.SNS.SMS.SMSType", transactional)
            .send()
            .await
            .map_err(|e| classify("SNS", e))?;
        Ok(output.message_id.unwrap_or_default())
    }
}

/// Creates the SES identity `identity` (an e-mail address or a domain) unless it exists. For
/// `quotes bootstrap` on the emulators; in AWS, Terraform owns the identity (and its
/// verification).
#[tracing::instrument(skip(client))]
pub async fn create_ses_identity(
    client: &aws_sdk_sesv2::Client,
    identity: &str,
) -> Result<Created, SendError> {
    match client
        .get_email_identity()
        .email_identity(identity)
        .send()
        .await
    {
        Ok(_) => return Ok(Created::Existed),
        Err(err) => {
            let missing = err
                .as_service_error()
                .is_some_and(|e| e.is_not_found_exception());
            if !missing {
                return Err(classify("SES", err));
            }
        }
    }
    match client
        .create_email_identity()
        .email_identity(identity)
        .send()
        .await
    {
        Ok(_) => Ok(Created::Created),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_already_exists_exception()) =>
        {
            Ok(Created::Existed)
        }
        Err(err) => Err(classify("SES", err)),
    }
}

// ---------------------------------------------------------------------------------------------
// Fakes.
// ---------------------------------------------------------------------------------------------

/// An e-mail the fake sender accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEmail {
    /// Recipient.
    pub to: Email,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// The id it answered.
    pub message_id: String,
}

/// An SMS the fake sender accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// Recipient.
    pub to: PhoneE164,
    /// Text.
    pub text: String,
    /// The id it answered.
    pub message_id: String,
}

/// Records the messages it accepts in memory (`T`: what one message is recorded as);
/// [`InMemoryOutbox::fail_next`] queues failures. The e-mail and SMS fakes are
/// [`InMemoryEmailSender`] and [`InMemorySmsSender`].
#[derive(Debug)]
pub struct InMemoryOutbox<T> {
    sent: Mutex<Vec<T>>,
    failures: Mutex<VecDeque<SendError>>,
}

/// Records e-mails in memory; [`InMemoryOutbox::fail_next`] queues failures.
pub type InMemoryEmailSender = InMemoryOutbox<SentEmail>;

/// Records SMS in memory; [`InMemoryOutbox::fail_next`] queues failures.
pub type InMemorySmsSender = InMemoryOutbox<SentSms>;

impl<T> Default for InMemoryOutbox<T> {
    fn default() -> Self {
        Self {
            sent: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
        }
    }
}

impl<T: Clone> InMemoryOutbox<T> {
    /// A sender that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next send fails with `error` (queued in order).
    pub fn fail_next(&self, error: SendError) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(error);
    }

    /// Every message accepted, in order.
    pub fn sent(&self) -> Vec<T> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fails with the next queued failure, or records the message `record` makes of its id
    /// (`{prefix}-{n}`, `n` counting accepted messages from 1) and answers that id.
    fn accept(&self, prefix: &str, record: impl FnOnce(String) -> T) -> Result<String, SendError> {
        if let Some(error) = self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
        {
            return Err(error);
        }
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let message_id = format!("{prefix}-{}", sent.len() + 1);
        sent.push(record(message_id.clone()));
        Ok(message_id)
    }
}

#[async_trait]
impl EmailSender for InMemoryEmailSender {
    async fn send_email(&self, to: &Email, subject: &str, body: &str) -> Result<String, SendError> {
        self.accept("email", |message_id| SentEmail {
            to: to.clone(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            message_id,
        })
    }
}

#[async_trait]
impl SmsSender for InMemorySmsSender {
    async fn send_sms(&self, to: &PhoneE164, text: &str) -> Result<String, SendError> {
        self.accept("sms", |message_id| SentSms {
            to: to.clone(),
            text: text.to_owned(),
            message_id,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An SDK configuration pointing at `endpoint`, with test credentials.
    fn sdk(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sesv2::config::SharedCredentialsProvider::new(
                aws_sdk_sesv2::config::Credentials::new("test", "test", None, None, "test"),
            ))
            .endpoint_url(endpoint)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_millis(500))
                    .build(),
            )
            .build()
    }

    fn email() -> Email {
        Email::parse("ana@example.com").unwrap()
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_so_not_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let sdk = sdk(&format!("http://127.0.0.1:{port}"));
        let err = SesEmailSender::from_sdk_config(&sdk, email())
            .send_email(&email(), "s", "b")
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Unreachable { .. }), "{err}");
        assert!(!err.may_have_been_sent());
        let err = SnsSmsSender::from_sdk_config(&sdk)
            .send_sms(&PhoneE164::parse("+18045550142").unwrap(), "t")
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_may_have_sent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and reads, never answers.
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let sdk = sdk(&format!("http://127.0.0.1:{port}"));
        let err = SesEmailSender::from_sdk_config(&sdk, email())
            .send_email(&email(), "s", "b")
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Unknown { .. }), "{err}");
        assert!(err.may_have_been_sent());
        server.abort();
    }

    /// Answers every request with `status` (e.g. `429 Too Many Requests`), the extra
    /// `headers` (CRLF-terminated lines) and `body`, after reading the request to its end.
    async fn canned(status: &str, headers: &str, body: &str) -> (u16, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let response = format!(
            "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let read = socket.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (port, server)
    }

    async fn ses_answering(status: &str, headers: &str, body: &str) -> SendError {
        let (port, server) = canned(status, headers, body).await;
        let sdk = sdk(&format!("http://127.0.0.1:{port}"));
        let err = SesEmailSender::from_sdk_config(&sdk, email())
            .send_email(&email(), "s", "b")
            .await
            .unwrap_err();
        server.abort();
        err
    }

    async fn sns_answering(status: &str, body: &str) -> SendError {
        let (port, server) = canned(status, "content-type: text/xml\r\n", body).await;
        let sdk = sdk(&format!("http://127.0.0.1:{port}"));
        let err = SnsSmsSender::from_sdk_config(&sdk)
            .send_sms(&PhoneE164::parse("+18045550142").unwrap(), "t")
            .await
            .unwrap_err();
        server.abort();
        err
    }

    fn sns_error(code: &str) -> String {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        )
    }

    #[tokio::test]
    async fn ses_and_sns_throttling_is_not_sent_and_transient() {
        let err = ses_answering(
            "429 Too Many Requests",
            "content-type: application/json\r\nx-amzn-errortype: TooManyRequestsException\r\n",
            r#"{"message":"Maximum sending rate exceeded."}"#,
        )
        .await;
        assert!(matches!(err, SendError::Throttled { .. }), "{err}");
        assert!(!err.may_have_been_sent());
        assert!(err.is_transient());
        let err = sns_answering("400 Bad Request", &sns_error("Throttling")).await;
        assert!(matches!(err, SendError::Throttled { .. }), "{err}");
        let err = sns_answering("429 Too Many Requests", &sns_error("Throttled")).await;
        assert!(matches!(err, SendError::Throttled { .. }), "{err}");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn a_5xx_from_ses_or_sns_may_have_sent() {
        let err = ses_answering(
            "500 Internal Server Error",
            "content-type: application/json\r\nx-amzn-errortype: InternalFailure\r\n",
            "{}",
        )
        .await;
        assert!(matches!(err, SendError::Unknown { .. }), "{err}");
        assert!(err.may_have_been_sent(), "never resent: recorded unknown");
        let err = sns_answering("503 Service Unavailable", &sns_error("ServiceUnavailable")).await;
        assert!(matches!(err, SendError::Unknown { .. }), "{err}");
        assert!(err.may_have_been_sent());
    }

    #[tokio::test]
    async fn a_refusal_is_not_sent_and_permanent() {
        let err = ses_answering(
            "400 Bad Request",
            "content-type: application/json\r\nx-amzn-errortype: BadRequestException\r\n",
            "{}",
        )
        .await;
        assert!(matches!(err, SendError::Rejected { .. }), "{err}");
        assert!(!err.is_transient() && !err.may_have_been_sent());
        let err = sns_answering("400 Bad Request", &sns_error("InvalidParameter")).await;
        assert!(matches!(err, SendError::Rejected { .. }), "{err}");
    }

    #[tokio::test]
    async fn fakes_record_and_fail_on_demand() {
        let mail = InMemoryEmailSender::new();
        mail.fail_next(SendError::Rejected {
            provider: "SES",
            message: "no".into(),
        });
        assert!(mail.send_email(&email(), "s", "b").await.is_err());
        assert_eq!(
            mail.send_email(&email(), "s", "b").await.unwrap(),
            "email-1"
        );
        assert_eq!(mail.sent().len(), 1);
        let sms = InMemorySmsSender::new();
        let phone = PhoneE164::parse("+18045550142").unwrap();
        assert_eq!(sms.send_sms(&phone, "t").await.unwrap(), "sms-1");
        assert_eq!(sms.sent()[0].text, "t");
    }
}
