//! A newcomer's first minute: start the embedded platform, POST a quote request, and GET a
//! priced quote a moment later; customers see only their own quotes.

use std::time::{Duration, Instant};

use event_source::config::Config;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "test-secret-0123456789";

fn body(customer: &str, vin: &str, accident_prone: bool) -> Value {
    json!({
        "customer_id": customer,
        "contact": {"email": "ana@example.com", "phone": "+18045550142"},
        "vehicles": [{"vin": vin, "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
        "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                     "license_number": if accident_prone { "D0000001" } else { "T12345678" },
                     "license_state": "VA", "first_licensed": "2006-05-01"}],
        "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500},
        "notify": {"email": true, "sms": false, "max_premium": 5000}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_quote_is_priced_moments_later() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(quotes::platform::run_embedded(
        listener,
        Config::for_memory(SECRET),
        shutdown.clone(),
    ));

    let token = |sub: &str, agent| {
        event_source::auth::mint_hs256(SECRET, sub, agent, Duration::from_secs(600), None, None)
            .expect("token")
    };
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (i, vin) in [
        "1HGCM82633A004352",
        "5YJ3E1EA2KF317000",
        "1FAFP40492F172825",
    ]
    .iter()
    .enumerate()
    {
        let reply = http
            .post(format!("{base}/v1/quotes"))
            .bearer_auth(token("cust-42", false))
            .json(&body("cust-42", vin, i == 2))
            .send()
            .await
            .expect("post");
        assert_eq!(reply.status(), 202);
        ids.push(
            reply.json::<Value>().await.expect("json")["quote_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let started = Instant::now();
    for id in &ids {
        loop {
            let quote: Value = http
                .get(format!("{base}/v1/quotes/{id}"))
                .bearer_auth(token("cust-42", false))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            let status = quote["status"].as_str().unwrap_or_default().to_owned();
            if status != "pending" {
                assert!(
                    ["quoted", "declined", "referred"].contains(&status.as_str()),
                    "{quote}"
                );
                eprintln!(
                    "{id}: {status} {} {:?}",
                    quote["annual_premium_cents"], quote["reasons"]
                );
                if status == "quoted" {
                    assert!(
                        quote["annual_premium_cents"]
                            .as_u64()
                            .is_some_and(|c| c > 0),
                        "{quote}"
                    );
                }
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "quote {id} still pending: {quote}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "all quotes decided {:?} after the last request",
        started.elapsed()
    );
    let list: Value = http
        .get(format!("{base}/v1/customers/cust-42/quotes"))
        .bearer_auth(token("cust-42", false))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["quotes"].as_array().map(Vec::len), Some(3));
    let other = http
        .get(format!("{base}/v1/quotes/{}", ids[0]))
        .bearer_auth(token("cust-7", false))
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 404);
    shutdown.cancel();
    server.await.expect("task").expect("clean shutdown");
}
