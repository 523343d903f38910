//! An `https://` OTLP endpoint is spoken to over TLS: the exporter opens the connection with a
//! TLS ClientHello (a build without a TLS stack for the exporter refuses the scheme and never
//! connects). The listener here only records the first bytes; no collector answers.

use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn spans_are_exported_over_tls_to_an_https_endpoint() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (first_bytes, received) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut connection, _)) = listener.accept() {
            let _ = connection.set_read_timeout(Some(Duration::from_secs(10)));
            let mut bytes = [0u8; 3];
            if connection.read_exact(&mut bytes).is_ok() {
                let _ = first_bytes.send(bytes);
            }
        }
    });
    // This test binary holds only this test, so setting the variables cannot race another test.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("https://127.0.0.1:{port}"),
    );
    std::env::set_var("OTEL_METRICS_EXPORTER", "none");
    std::env::set_var("OTEL_EXPORTER_OTLP_TIMEOUT", "2000");
    let guard = quote_runtime::telemetry::init(
        "otlp-https-test",
        &quote_runtime::telemetry::LogConfig::default(),
    );
    tracing::info_span!("exported").in_scope(|| tracing::info!("inside a span"));
    // Dropping the guard flushes the batch: the exporter connects.
    drop(guard);
    let bytes = received
        .recv_timeout(Duration::from_secs(20))
        .expect("the exporter connected to the https endpoint");
    // A TLS record of type handshake (22), protocol version 3.x.
    assert_eq!(bytes[0], 22, "not a TLS handshake: {bytes:?}");
    assert_eq!(bytes[1], 3, "not a TLS handshake: {bytes:?}");
}
