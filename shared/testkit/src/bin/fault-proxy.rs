//! `fault-proxy`: the test kit's fault-injecting proxy as a process, for scripts.
//!
//! ```text
//! fault-proxy --upstream http://127.0.0.1:8000 [--listen 127.0.0.1:0] [--rules rules.json]
//! ```
//!
//! Prints `listening on http://<address>` on its first line of output, then serves until it is
//! stopped (SIGTERM, Ctrl-C). The rule file holds a JSON list of rules (see
//! `testkit::fault_proxy::Rule`); rules are added and removed at run time over HTTP on the same
//! port (`GET /__faults`, `POST`/`DELETE /__faults/rules`).

use std::net::SocketAddr;

use testkit::fault_proxy::{FaultProxy, Rule};

const USAGE: &str =
    "usage: fault-proxy --upstream http://HOST:PORT [--listen ADDR:PORT] [--rules FILE]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut upstream = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut rules: Vec<Rule> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        match flag.as_str() {
            "--upstream" => upstream = Some(value),
            "--listen" => listen = value.parse()?,
            "--rules" => rules = serde_json::from_str(&std::fs::read_to_string(value)?)?,
            _ => return Err(USAGE.into()),
        }
    }
    let upstream = upstream.ok_or(USAGE)?;
    let proxy = FaultProxy::bind(listen, &upstream).await?;
    for rule in rules {
        proxy.add(rule);
    }
    println!("listening on {}", proxy.url());
    tokio::select! {
        () = proxy.run() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminated() => {}
    }
    Ok(())
}

#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}
