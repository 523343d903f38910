//! The object store on S3.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::objects::{ObjectStore, ObjectStoreError};

/// Segments in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
}

impl S3Objects {
    /// The store on `bucket`.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// An S3 client for the SDK configuration `sdk`. With an endpoint override
    /// (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`: LocalStack, moto) it addresses buckets by
    /// path, which such endpoints need; on AWS by virtual host.
    pub fn client(sdk: &aws_config::SdkConfig) -> Client {
        let overridden = sdk.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(overridden)
            .build();
        Client::from_conf(config)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn failed(
    operation: &'static str,
    key: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> ObjectStoreError {
    ObjectStoreError {
        operation,
        key: key.to_owned(),
        source: source.into(),
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ObjectStoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/gzip")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| failed("PutObject", key, e.into_service_error()))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectStoreError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => {
                let err = err.into_service_error();
                if err.is_no_such_key() {
                    return Ok(None);
                }
                return Err(failed("GetObject", key, err));
            }
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| failed("GetObject", key, e))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, ObjectStoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failed("ListObjectsV2", prefix, e.into_service_error()))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("DeleteObject", key, e.into_service_error()))?;
        Ok(())
    }
}

/// Creates `bucket` unless it exists; true when created.
pub async fn create_bucket(client: &Client, bucket: &str) -> Result<bool, ObjectStoreError> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(false);
    }
    let region = client.config().region().map(|r| r.as_ref().to_owned());
    // us-east-1 takes no location constraint; every other region needs its own.
    let location = region.filter(|r| r != "us-east-1").map(|r| {
        aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                r.as_str(),
            ))
            .build()
    });
    match client
        .create_bucket()
        .bucket(bucket)
        .set_create_bucket_configuration(location)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(err) => {
            let err = err.into_service_error();
            if err.is_bucket_already_owned_by_you() {
                Ok(false)
            } else {
                Err(failed("CreateBucket", bucket, err))
            }
        }
    }
}
