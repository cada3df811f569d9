//! `sealcast bench doc-opens`: many clients opening documents at once (a
//! page of editors loading, a class joining its notes). Builds D documents
//! of N ops each, connects and subscribes C clients (client `i` on document
//! `i mod D`), then every client sends its `doc-join` at once; a client
//! refused for now (`rate_limited`) retries as the SDK does (100 ms,
//! doubling, at most 5 s). Reports the time until every client had its
//! join answered, per-client percentiles and the refusals.

use std::time::Instant;

use clap::Args;
use sealcast_core::doc::{RETRY_FIRST, RETRY_MAX};
use sealcast_core::protocol::doc::{self, DocErrorCode, DocReply, DocRequest, Join};
use tokio::task::JoinSet;

use super::Target;
use super::client::Subscriber;
use super::docs::{doc_error, doc_reply, percentile, run_id, submit_frame};
use crate::cli::CliError;

#[derive(Args)]
pub struct OpensArgs {
    #[command(flatten)]
    target: Target,
    /// Clients, each opening one document (1–2000).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Documents (1–1000).
    #[arg(long, default_value_t = 100)]
    documents: usize,
    /// Ops of history per document (0–10000).
    #[arg(long, default_value_t = 50)]
    ops: u64,
}

pub async fn run(args: OpensArgs) -> Result<(), CliError> {
    if !(1..=2000).contains(&args.clients) || !(1..=1000).contains(&args.documents) || args.ops > 10_000 {
        return Err(CliError::Bench("--clients 1–2000, --documents 1–1000, --ops 0–10000".into()));
    }
    let run = run_id();
    let channels: Vec<String> =
        (0..args.documents).map(|d| doc::channel_for(&format!("open-{run}-{d}"), false)).collect();
    // The history, one document after the other (not timed).
    let mut author = Subscriber::connect(&args.target).await?;
    for channel in &channels {
        author.subscribe_private(&args.target, channel).await?;
        for n in 0..args.ops {
            author.send(&submit_frame(channel, n, &format!("a-{n}"), "x".repeat(100).as_str())).await?;
            loop {
                match doc_reply(&author.next_json().await?) {
                    Some(DocReply::Ack(_)) => break,
                    Some(DocReply::Error(error)) => return Err(doc_error(&error)),
                    _ => {}
                }
            }
        }
    }
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let channel = channels[i % channels.len()].clone();
        let mut client = Subscriber::connect(&args.target).await?;
        client.subscribe_private(&args.target, &channel).await?;
        clients.push((client, channel));
    }
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (mut client, channel) in clients {
        tasks.spawn(async move {
            let join = DocRequest::Join(Join::default()).encode(&channel);
            let (mut refusals, mut wait) = (0u32, RETRY_FIRST);
            client.send(&join).await?;
            loop {
                match doc_reply(&client.next_json().await?) {
                    Some(DocReply::State(_)) => return Ok::<_, CliError>((started.elapsed(), refusals)),
                    Some(DocReply::Error(error)) if error.code == DocErrorCode::RateLimited => {
                        refusals += 1;
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(RETRY_MAX);
                        client.send(&join).await?;
                    }
                    Some(DocReply::Error(error)) => return Err(doc_error(&error)),
                    _ => {}
                }
            }
        });
    }
    let (mut times, mut refused) = (Vec::new(), 0u32);
    while let Some(result) = tasks.join_next().await {
        let (elapsed, refusals) = result.map_err(|e| CliError::Bench(e.to_string()))??;
        times.push(elapsed.as_secs_f64() * 1e3);
        refused += refusals;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "doc-opens: {} clients on {} documents of {} ops\n  all joined in {:.0} ms (per client p50 {:.0} ms, p99 {:.0} ms); {} joins refused for now and retried",
        args.clients,
        args.documents,
        args.ops,
        times.last().copied().unwrap_or(f64::NAN),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        refused,
    );
    Ok(())
}
