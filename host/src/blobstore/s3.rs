//! An S3 store for a grant: endpoint, region and credentials from the
//! embedder (or the usual `AWS_*` environment variables). Credentials stay
//! in the host: the component only ever sees container names and keys.

use object_store::aws::{AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::{ObjectStore, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// Where an S3 bucket is and how to sign requests to it. `None` fields come
/// from the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...), as the AWS tools do.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The bucket's name.
    pub bucket: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); AWS when `None`.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: Option<String>,
    /// The access key id (never passed to the guest).
    pub access_key_id: Option<String>,
    /// The secret key (never passed to the guest).
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (local servers, tests).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Retries of one request: few, so that a dead server surfaces as an error
/// well within a call's deadline (which bounds every operation anyway).
const MAX_RETRIES: usize = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

impl S3Settings {
    /// Settings for `bucket` taken wholly from the environment.
    pub fn from_env(bucket: impl Into<String>) -> Self {
        S3Settings {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// The store. Conditional writes are on: a small object is created with
    /// `If-None-Match: *`, a copy onto an existing key is refused (copy as a
    /// one-part multipart upload completed with `If-None-Match`).
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
            .with_retry(RetryConfig {
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
                ..RetryConfig::default()
            });
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &self.region {
            b = b.with_region(r);
        }
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &self.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if self.allow_http {
            b = b.with_allow_http(true);
        }
        Ok(Arc::new(b.build()?))
    }
}
