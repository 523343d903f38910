//! The archive's adapters on moto — the object store on S3, the manifest on DynamoDB — pass the
//! same contract suites as the in-memory ones (`archive_memory.rs`), the manifest's
//! linearizability included.

use std::sync::Arc;

use quote_archive::dynamodb::{create_manifest_table, DynamoManifest};
use quote_archive::s3::{create_bucket, S3Objects};

async fn bucket() -> Arc<S3Objects> {
    let sdk = testkit::aws_config().await;
    let client = S3Objects::client(&sdk);
    let bucket = testkit::unique_name("archive");
    create_bucket(&client, &bucket).await.expect("bucket");
    Arc::new(S3Objects::new(client, bucket))
}

async fn manifest() -> Arc<DynamoManifest> {
    let sdk = testkit::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = testkit::unique_name("archive-manifest");
    create_manifest_table(&client, &table).await.expect("table");
    Arc::new(DynamoManifest::new(client, table))
}

mod s3_objects {
    quote_archive::object_store_contract!(super::bucket());
}

mod dynamodb_manifest {
    quote_archive::manifest_contract!(super::manifest());
}
