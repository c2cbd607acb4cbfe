//! The baseline for `scripts/bench-object-store.sh`: a plain S3 client,
//! the way object_store's documentation writes one, that copies a local
//! file to a key (a multipart upload, 16 MiB parts, a few in flight) or a
//! key to a local file (one streamed GET). Settings come from the usual
//! `AWS_*` environment variables.
//!
//!   cargo run --release --example s3_copy -- put FILE s3://BUCKET/KEY
//!   cargo run --release --example s3_copy -- get s3://BUCKET/KEY FILE

use std::process::ExitCode;

use futures_util::StreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PART: usize = 16 << 20;
const IN_FLIGHT: usize = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.as_slice() {
        [op, file, url] if op == "put" => put(file, url).await,
        [op, url, file] if op == "get" => get(url, file).await,
        _ => Err("usage: s3_copy put FILE s3://BUCKET/KEY | get s3://BUCKET/KEY FILE".into()),
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3_copy: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn open(url: &str) -> Result<(object_store::aws::AmazonS3, Path)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rest = url.strip_prefix("s3://").ok_or("not an s3:// URL")?;
    let (bucket, key) = rest.split_once('/').ok_or("no key")?;
    let store = AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
    Ok((store, Path::from(key)))
}

async fn put(file: &str, url: &str) -> Result<()> {
    let (store, key) = open(url)?;
    let upload = store.put_multipart(&key).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut local = tokio::fs::File::open(file).await?;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = local.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(IN_FLIGHT).await?;
        writer.write(buf.get(..n).unwrap_or_default());
    }
    writer.finish().await?;
    Ok(())
}

async fn get(url: &str, file: &str) -> Result<()> {
    let (store, key) = open(url)?;
    let mut body = store.get(&key).await?.into_stream();
    let mut local = tokio::fs::File::create(file).await?;
    while let Some(bytes) = body.next().await {
        local.write_all(&bytes?).await?;
    }
    local.flush().await?;
    Ok(())
}
