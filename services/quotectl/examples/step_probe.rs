//! Temporary probe: latency of each raw call of the aws baseline (not part of the crate).
#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};
use aws_sdk_dynamodb::types::AttributeValue as A;

#[tokio::main]
async fn main() {
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let kin = aws_sdk_kinesis::Client::new(&sdk);
    let conc: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1);
    let stream = std::env::args().nth(2).unwrap_or_else(|| "quote-events".into());
    let data = "x".repeat(2500);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tasks = vec![];
    for _ in 0..conc {
        let (ddb, kin, data, stream) = (ddb.clone(), kin.clone(), data.clone(), stream.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = [Vec::new(), Vec::new(), Vec::new()];
            while Instant::now() < deadline {
                let id = format!("probe#{}", uuid::Uuid::now_v7());
                let s = Instant::now();
                let head = aws_sdk_dynamodb::types::Update::builder().table_name("quote-events")
                    .key("stream_id", A::S(id.clone())).key("version", A::N("0".into()))
                    .update_expression("SET head_version = :one").condition_expression("attribute_not_exists(stream_id)")
                    .expression_attribute_values(":one", A::N("1".into())).build().unwrap();
                let put = aws_sdk_dynamodb::types::Put::builder().table_name("quote-events")
                    .item("stream_id", A::S(id.clone())).item("version", A::N("1".into())).item("data", A::S(data.clone()))
                    .condition_expression("attribute_not_exists(stream_id)").build().unwrap();
                ddb.transact_write_items()
                    .transact_items(aws_sdk_dynamodb::types::TransactWriteItem::builder().update(head).build())
                    .transact_items(aws_sdk_dynamodb::types::TransactWriteItem::builder().put(put).build())
                    .send().await.unwrap();
                t[0].push(s.elapsed());
                let s = Instant::now();
                let e = aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .data(aws_sdk_kinesis::primitives::Blob::new(data.clone().into_bytes())).partition_key(&id).build().unwrap();
                kin.put_records().stream_name(&stream).records(e).send().await.unwrap();
                t[1].push(s.elapsed());
                let s = Instant::now();
                ddb.update_item().table_name("quote-events").key("stream_id", A::S(id.clone())).key("version", A::N("0".into()))
                    .update_expression("SET published_version = :one").expression_attribute_values(":one", A::N("1".into()))
                    .send().await.unwrap();
                t[2].push(s.elapsed());
            }
            t
        }));
    }
    let mut all = [Vec::new(), Vec::new(), Vec::new()];
    for task in tasks { let t = task.await.unwrap(); for i in 0..3 { all[i].extend(t[i].iter().copied()); } }
    for (name, mut v) in ["TransactWriteItems", "PutRecords", "UpdateItem"].into_iter().zip(all) {
        v.sort();
        println!("{name}: n={} p50={:?} p95={:?}", v.len(), v[v.len() / 2], v[v.len() * 95 / 100]);
    }
}
