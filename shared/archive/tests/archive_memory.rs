//! The archive's in-memory adapters pass the same contract suites as S3 and DynamoDB
//! (`archive_aws.rs`).

mod objects {
    quote_archive::object_store_contract!(async {
        std::sync::Arc::new(quote_archive::InMemoryObjects::new())
    });
}

mod manifest {
    quote_archive::manifest_contract!(async {
        std::sync::Arc::new(quote_archive::InMemoryManifest::new())
    });
}
