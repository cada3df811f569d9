//! `sealcast bench fanout`: one channel, N subscribers, M published events.
//!
//! Each event's data starts with `{seq}:{sent_micros}:` (microseconds since
//! the bench started, on the bench's own monotonic clock), padded with `x`
//! to the requested size, so every subscriber measures end-to-end latency
//! (HTTP publish → server → WebSocket delivery) without clock skew.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use fastwebsockets::OpCode;
use sealcast_core::protocol::event::FrameView;
use serde_json::json;
use tokio::task::JoinSet;

use super::client::{Publisher, Subscriber};
use super::{Target, proc_stats};
use crate::cli::CliError;

#[derive(Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    target: Target,
    /// WebSocket subscribers on the channel (1–20000).
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Events published through the HTTP API (1–1000000).
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Size of each event's data, bytes (32–65536).
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Events published per second (0: as fast as the server answers).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Channel name.
    #[arg(long, default_value = "bench-fanout")]
    channel: String,
    /// Seconds to wait for stragglers after the last publish.
    #[arg(long, default_value_t = 20)]
    drain_timeout: u64,
    /// Cluster mode: another node's ws://HOST:PORT; every second subscriber
    /// connects there instead of to --url.
    #[arg(long)]
    also_url: Option<String>,
    /// Publish through this node's HTTP API (ws://HOST:PORT) instead of --url's.
    #[arg(long)]
    publish_url: Option<String>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

struct Received {
    count: usize,
    out_of_order: usize,
    latencies_us: Vec<u32>,
    last_at: Option<Instant>,
    closed: bool,
}

pub async fn run(args: FanoutArgs) -> Result<(), CliError> {
    if !(1..=20_000).contains(&args.subscribers)
        || !(1..=1_000_000).contains(&args.messages)
        || !(32..=65_536).contains(&args.payload)
    {
        return Err(CliError::Bench(
            "out of bounds: subscribers 1–20000, messages 1–1000000, payload 32–65536".into(),
        ));
    }
    eprintln!("connecting {} subscribers to {} …", args.subscribers, args.target.url);
    let mut subscribers = Vec::with_capacity(args.subscribers);
    // Connect in waves so the listen backlog is never the bottleneck.
    for wave in (0..args.subscribers).collect::<Vec<_>>().chunks(100) {
        let mut set = JoinSet::new();
        for index in wave {
            let mut target = args.target.clone();
            if let Some(other) = args.also_url.as_ref().filter(|_| index % 2 == 1) {
                target.url = other.clone();
            }
            let channel = args.channel.clone();
            set.spawn(async move {
                let mut subscriber = Subscriber::connect(&target).await?;
                subscriber.subscribe(&channel).await?;
                Ok::<_, CliError>(subscriber)
            });
        }
        while let Some(joined) = set.join_next().await {
            subscribers.push(joined.map_err(|e| CliError::Bench(e.to_string()))??);
        }
    }
    let server_before = args.target.server_pid.and_then(proc_stats::read);
    let start = Instant::now();
    let give_up = Arc::new(AtomicBool::new(false));
    let mut readers = JoinSet::new();
    for mut subscriber in subscribers {
        let expected = args.messages;
        let give_up = give_up.clone();
        readers.spawn(async move {
            let mut got = Received {
                count: 0,
                out_of_order: 0,
                latencies_us: Vec::with_capacity(expected),
                last_at: None,
                closed: false,
            };
            let mut last_seq: Option<u64> = None;
            while got.count < expected && !give_up.load(Ordering::Relaxed) {
                let frame = match tokio::time::timeout(Duration::from_millis(250), subscriber.ws.read_frame())
                    .await
                {
                    Err(_) => continue,
                    Ok(Err(_)) => {
                        got.closed = true;
                        break;
                    }
                    Ok(Ok(frame)) => frame,
                };
                if frame.opcode == OpCode::Close {
                    got.closed = true;
                    break;
                }
                let Ok(parsed) = FrameView::parse(&frame.payload) else { continue };
                if parsed.event != "bench" {
                    continue;
                }
                let mut parts = parsed.data.as_deref().unwrap_or("").splitn(3, ':');
                let (Some(Ok(seq)), Some(Ok(sent))) =
                    (parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<u64>))
                else {
                    continue;
                };
                let now = Instant::now();
                let latency = u64::try_from(now.duration_since(start).as_micros())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(sent);
                got.latencies_us.push(u32::try_from(latency).unwrap_or(u32::MAX));
                if last_seq.is_some_and(|last| seq <= last) {
                    got.out_of_order += 1;
                }
                last_seq = Some(seq);
                got.count += 1;
                got.last_at = Some(now);
            }
            got
        });
    }

    let mut publish_target = args.target.clone();
    if let Some(url) = &args.publish_url {
        publish_target.url = url.clone();
    }
    let mut publisher = Publisher::connect(&publish_target).await?;
    let mut publish_errors = 0usize;
    let padding = "x".repeat(args.payload);
    for seq in 0..args.messages {
        if args.rate > 0 {
            let due = start + Duration::from_secs_f64(seq as f64 / f64::from(args.rate));
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = start.elapsed().as_micros();
        let mut data = format!("{seq}:{sent}:");
        data.push_str(&padding[..args.payload.saturating_sub(data.len())]);
        match publisher.publish(&args.channel, "bench", &data).await {
            Ok(200) => {}
            outcome => {
                if publish_errors == 0 {
                    eprintln!("first publish error: {outcome:?}");
                }
                publish_errors += 1;
            }
        }
    }
    let published_in = start.elapsed();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.drain_timeout);
    let flag = give_up.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline).await;
        flag.store(true, Ordering::Relaxed);
    });
    let mut results = Vec::new();
    while let Some(joined) = readers.join_next().await {
        results.push(joined.map_err(|e| CliError::Bench(e.to_string()))?);
    }
    let server_after = args.target.server_pid.and_then(proc_stats::read);
    report(&args, &results, publish_errors, published_in, start, server_before.zip(server_after));
    Ok(())
}

fn report(
    args: &FanoutArgs,
    results: &[Received],
    publish_errors: usize,
    published_in: Duration,
    start: Instant,
    server: Option<(proc_stats::ProcStats, proc_stats::ProcStats)>,
) {
    let delivered: usize = results.iter().map(|r| r.count).sum();
    let expected = args.subscribers * args.messages;
    let out_of_order: usize = results.iter().map(|r| r.out_of_order).sum();
    let closed = results.iter().filter(|r| r.closed).count();
    let last = results.iter().filter_map(|r| r.last_at).max().unwrap_or(start);
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    let mut latencies: Vec<u32> = results.iter().flat_map(|r| r.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    let rate = delivered as f64 / elapsed;
    let cpu_us_per_msg =
        server.map(|(a, b)| (b.cpu.saturating_sub(a.cpu)).as_secs_f64() * 1e6 / delivered.max(1) as f64);
    let user_us_per_msg =
        server.map(|(a, b)| (b.user.saturating_sub(a.user)).as_secs_f64() * 1e6 / delivered.max(1) as f64);
    let server_cpu_s = server.map(|(a, b)| b.cpu.saturating_sub(a.cpu).as_secs_f64());
    let server_rss_mib = server.map(|(_, b)| b.rss as f64 / (1024.0 * 1024.0));
    if args.json {
        println!(
            "{}",
            json!({
                "subscribers": args.subscribers, "messages": args.messages, "payload": args.payload, "rate": args.rate,
                "delivered": delivered, "expected": expected, "lost": expected - delivered.min(expected),
                "out_of_order": out_of_order, "closed_early": closed, "publish_errors": publish_errors,
                "published_in_s": published_in.as_secs_f64(), "elapsed_s": elapsed, "msgs_per_s": rate,
                "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
                "server_cpu_s": server_cpu_s, "server_cpu_us_per_msg": cpu_us_per_msg,
                "server_user_us_per_msg": user_us_per_msg, "server_rss_mib": server_rss_mib,
            })
        );
        return;
    }
    println!(
        "fanout: {} subscribers × {} events of {} B at {}/s on {}",
        args.subscribers,
        args.messages,
        args.payload,
        if args.rate == 0 { "max".to_string() } else { args.rate.to_string() },
        args.target.url
    );
    println!(
        "delivered {delivered}/{expected} (lost {}, out of order {out_of_order}, connections closed early {closed}), publish errors {publish_errors}",
        expected - delivered.min(expected)
    );
    println!(
        "throughput {rate:.0} msgs/s over {elapsed:.2} s (publishing took {:.2} s)",
        published_in.as_secs_f64()
    );
    println!("latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", pct(0.5), pct(0.99), pct(1.0));
    if let (Some(cpu), Some(per), Some(user), Some(rss)) =
        (server_cpu_s, cpu_us_per_msg, user_us_per_msg, server_rss_mib)
    {
        println!(
            "server: cpu {cpu:.2} s ({per:.2} µs per delivered message, {user:.2} µs of it user space), rss {rss:.1} MiB"
        );
    }
}
