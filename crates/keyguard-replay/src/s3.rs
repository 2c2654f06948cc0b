//! `s3://bucket/prefix`: ListObjectsV2 (paginated) and GetObject with bounded concurrency on the async side,
//! each downloaded object handed through a bounded channel to the parse workers. At any time at most
//! `downloads` objects are in flight, a few wait in the channel, and one is parsed per worker.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::AggregatedBytes;
use futures::future::BoxFuture;
use rayon::prelude::*;
use tokio::task::JoinSet;

use crate::engine::{Context, Harvest};
use crate::files::{Buffers, FileOutcome, is_digest, layout_of};
use crate::parse::Layout;
use crate::{Filter, ReplayError, Source};

/// Every log file under an S3 prefix (`s3:ListBucket`, `s3:GetObject`; `s3:GetBucketLocation` to find a bucket in
/// another region). `AWS_ENDPOINT_URL` works as for every SDK client.
#[derive(Debug, Clone)]
pub struct S3Prefix {
    sdk: aws_config::SdkConfig,
    url: String,
    bucket: String,
    prefix: String,
    downloads: usize,
}

impl S3Prefix {
    /// `url` is `s3://bucket/prefix`; `downloads` objects are downloaded at once.
    pub fn new(sdk: &aws_config::SdkConfig, url: &str, downloads: usize) -> Result<S3Prefix, ReplayError> {
        let (bucket, prefix) = split_url(url).map_err(ReplayError::Usage)?;
        Ok(S3Prefix { sdk: sdk.clone(), url: url.to_string(), bucket, prefix, downloads: downloads.max(1) })
    }
}

impl Source for S3Prefix {
    fn name(&self) -> String {
        self.url.clone()
    }

    fn read<'a>(&'a self, context: &'a Context) -> BoxFuture<'a, Result<Harvest, ReplayError>> {
        Box::pin(replay(self, context))
    }
}

/// One object, downloaded or not.
struct Object {
    url: String,
    layout: Layout,
    body: Result<AggregatedBytes, String>,
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix.
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url}: an S3 URL starts with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url}: no bucket name"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// A client for the bucket: path-style addressing behind a custom endpoint (moto, MinIO), and the bucket's own
/// region on AWS (S3 does not redirect requests sent to another region).
async fn client_for(sdk: &aws_config::SdkConfig, bucket: &str) -> Client {
    let mut conf = aws_sdk_s3::config::Builder::from(sdk);
    if sdk.endpoint_url().is_some() {
        return Client::from_conf(conf.force_path_style(true).build());
    }
    let probe = Client::from_conf(conf.clone().build());
    if let Ok(out) = probe.get_bucket_location().bucket(bucket).send().await {
        let region = match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(r) => r.to_string(),
        };
        conf = conf.region(aws_config::Region::new(region));
    }
    Client::from_conf(conf.build())
}

/// Replays one `s3://` source.
async fn replay(source: &S3Prefix, context: &Context) -> Result<Harvest, ReplayError> {
    let client = client_for(&source.sdk, &source.bucket).await;
    let (tx, rx) = sync_channel::<Object>(source.downloads);
    // The parse side runs on the rayon pool while this task downloads; both end when the channel closes.
    let (listed, harvest) = std::thread::scope(|scope| {
        let parser = scope.spawn(|| parse_all(rx, context));
        let listed = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(download_all(&client, source, &context.filter, tx))
        });
        (listed, parser.join())
    });
    let mut harvest = harvest.map_err(|_| ReplayError::Worker)?;
    harvest.stats.skipped += listed.skipped;
    harvest.stats.digests += listed.digests;
    if let Some(problem) = listed.error {
        tracing::warn!(
            path = source.url.as_str(),
            problem = problem.as_str(),
            "listing failed: the objects after it were not read"
        );
        harvest.stats.errors += 1;
    }
    Ok(harvest)
}

fn parse_all(rx: Receiver<Object>, context: &Context) -> Harvest {
    context.pool.install(|| {
        rx.into_iter()
            .par_bridge()
            .map_init(Buffers::default, |b, o| {
                let outcome = match o.body {
                    Ok(body) => b.parse(&body.into_bytes(), &o.url, o.layout),
                    Err(problem) => FileOutcome::failed(problem),
                };
                (o.url, outcome)
            })
            .fold(Harvest::default, |h, (url, outcome)| h.file(&url, outcome, context))
            .reduce(Harvest::default, |a, b| a.merge(b, context))
    })
}

#[derive(Default)]
struct Listed {
    skipped: u64,
    digests: u64,
    error: Option<String>,
}

async fn download_all(client: &Client, source: &S3Prefix, filter: &Filter, tx: SyncSender<Object>) -> Listed {
    let (bucket, prefix, downloads) = (source.bucket.as_str(), source.prefix.as_str(), source.downloads);
    let mut listed = Listed::default();
    let mut running: JoinSet<Object> = JoinSet::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    'pages: while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                listed.error = Some(format!("ListObjectsV2 s3://{bucket}/{prefix}: {}", keyguard_aws_error(&e)));
                break;
            }
        };
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            if is_digest(key) {
                listed.digests += 1;
                continue;
            }
            let Some(layout) = layout_of(key) else { continue };
            if !filter.may_hold(key) {
                listed.skipped += 1;
                continue;
            }
            while running.len() >= downloads {
                if !forward(running.join_next().await, &tx) {
                    break 'pages;
                }
            }
            let (client, bucket, key) = (client.clone(), bucket.to_string(), key.to_string());
            running.spawn(async move {
                let url = format!("s3://{bucket}/{key}");
                let body = get(&client, &bucket, &key).await;
                Object { url, layout, body }
            });
        }
    }
    while let Some(done) = running.join_next().await {
        if !forward(Some(done), &tx) {
            break;
        }
    }
    listed
}

async fn get(client: &Client, bucket: &str, key: &str) -> Result<AggregatedBytes, String> {
    let out = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| keyguard_aws_error(&e))?;
    out.body.collect().await.map_err(|e| format!("reading the body: {e}"))
}

/// Hands a finished download to the parse workers, waiting when they are behind (the listing loop runs on a
/// thread of its own, see [`replay`]; the downloads themselves go on on the runtime's workers). False when the
/// workers are gone.
fn forward(done: Option<Result<Object, tokio::task::JoinError>>, tx: &SyncSender<Object>) -> bool {
    let object = match done {
        None => return true,
        Some(Ok(object)) => object,
        Some(Err(e)) => Object { url: "s3 download task".into(), layout: Layout::Document, body: Err(e.to_string()) },
    };
    tx.send(object).is_ok()
}

/// An SDK error with its service code and message (its Display is only "service error").
fn keyguard_aws_error<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => {
            format!("{}: {}", service.code().unwrap_or("error"), service.message().unwrap_or("(no message)"))
        }
        None => format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(split_url("s3://b/AWSLogs/1/").unwrap(), ("b".into(), "AWSLogs/1/".into()));
        assert_eq!(split_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(split_url("s3:///x").is_err());
    }
}
