//! `sealcast bench connections`: server memory per idle connection.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::task::JoinSet;

use super::client::Subscriber;
use super::{Target, proc_stats};
use crate::cli::CliError;

#[derive(Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    target: Target,
    /// Idle connections to open (1–20000).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Also subscribe each connection to its own public channel.
    #[arg(long)]
    subscribe: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: ConnectionsArgs) -> Result<(), CliError> {
    if !(1..=20_000).contains(&args.connections) {
        return Err(CliError::Bench("--connections must be 1–20000".into()));
    }
    let pid = args
        .target
        .server_pid
        .ok_or_else(|| CliError::Bench("--server-pid is required to read the server's memory".into()))?;
    let before = proc_stats::read(pid).ok_or_else(|| CliError::Bench(format!("cannot read /proc/{pid}")))?;
    let mut open = Vec::with_capacity(args.connections);
    let indices: Vec<usize> = (0..args.connections).collect();
    for wave in indices.chunks(100) {
        let mut set = JoinSet::new();
        for &i in wave {
            let target = args.target.clone();
            let subscribe = args.subscribe;
            set.spawn(async move {
                let mut subscriber = Subscriber::connect(&target).await?;
                if subscribe {
                    subscriber.subscribe(&format!("idle-{i}")).await?;
                }
                Ok::<_, CliError>(subscriber)
            });
        }
        while let Some(joined) = set.join_next().await {
            open.push(joined.map_err(|e| CliError::Bench(e.to_string()))??);
        }
    }
    // Let the server settle (allocator, lazily grown buffers).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_stats::read(pid).ok_or_else(|| CliError::Bench(format!("cannot read /proc/{pid}")))?;
    let per_connection = after.rss.saturating_sub(before.rss) as f64 / args.connections as f64;
    if args.json {
        println!(
            "{}",
            json!({"connections": args.connections, "subscribed": args.subscribe, "rss_before": before.rss,
                   "rss_after": after.rss, "bytes_per_connection": per_connection})
        );
    } else {
        println!(
            "connections: {} idle{} — server rss {:.1} MiB → {:.1} MiB, {:.1} KiB per connection",
            args.connections,
            if args.subscribe { " (each subscribed)" } else { "" },
            before.rss as f64 / 1048576.0,
            after.rss as f64 / 1048576.0,
            per_connection / 1024.0
        );
    }
    drop(open);
    Ok(())
}
