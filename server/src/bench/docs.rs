//! `sealcast bench doc-sequencer` and `sealcast bench doc-join`: the
//! document channel under load.
//!
//! - `doc-sequencer`: D documents, W writers each, every writer keeping one
//!   op in flight (the OT client model) for a fixed time; acknowledged ops
//!   per second per document and in total, ack latency percentiles. Every
//!   writer also receives the other writers' ops, as real clients do.
//! - `doc-join`: builds a document of N real encrypted ops (random typing,
//!   sealed by a [`DocClient`]-compatible key), with a snapshot T ops before
//!   the head, then times fresh clients joining it: connect, subscribe,
//!   `doc-join`, decrypt the snapshot, replay the tail, ready.

use std::time::{Duration, Instant};

use clap::Args;
use sealcast_core::crypto::{Key, KeyRing};
use sealcast_core::doc::{DocClient, DocConfig, payload};
use sealcast_core::ot::Delta;
use sealcast_core::ot::session::DocSession;
use sealcast_core::protocol::doc::{self, DocReply, DocRequest};
use serde_json::Value;
use tokio::task::JoinSet;

use super::Target;
use super::client::Subscriber;
use crate::cli::CliError;

#[derive(Args)]
pub struct SequencerArgs {
    #[command(flatten)]
    target: Target,
    /// Documents written concurrently (1–1000).
    #[arg(long, default_value_t = 1)]
    docs: usize,
    /// Writers per document, each with one op in flight (1–100).
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Seconds to run (1–600).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Op payload size, bytes (16–65536).
    #[arg(long, default_value_t = 200)]
    payload: usize,
}

#[derive(Args)]
pub struct JoinArgs {
    #[command(flatten)]
    target: Target,
    /// Ops of history to build (1–1000000).
    #[arg(long, default_value_t = 100_000)]
    ops: u64,
    /// Ops after the snapshot, replayed by every joiner.
    #[arg(long, default_value_t = 250)]
    tail: u64,
    /// Timed joins.
    #[arg(long, default_value_t = 20)]
    joins: usize,
}

/// A unique suffix so repeated runs against one server use fresh documents.
pub(super) fn run_id() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}", nanos & 0xffff_ffff_ffff)
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(super) fn submit_frame(channel: &str, base: u64, op_id: &str, payload: &str) -> String {
    DocRequest::Submit(doc::Submit { base, op_id: op_id.to_owned(), payload: payload.to_owned() })
        .encode(channel)
}

/// A server frame as a document reply (`None`: any other frame).
pub(super) fn doc_reply(frame: &Value) -> Option<DocReply> {
    DocReply::parse(frame["event"].as_str()?, &frame["data"]).ok()
}

/// A document error, as a bench error.
pub(super) fn doc_error(error: &doc::DocError) -> CliError {
    CliError::Bench(format!("server refused a document event: {} ({})", error.code, error.message))
}

pub async fn sequencer(args: SequencerArgs) -> Result<(), CliError> {
    if !(1..=1000).contains(&args.docs)
        || !(1..=100).contains(&args.writers)
        || !(1..=600).contains(&args.seconds)
        || !(16..=65_536).contains(&args.payload)
    {
        return Err(CliError::Bench(
            "--docs 1–1000, --writers 1–100, --seconds 1–600, --payload 16–65536".into(),
        ));
    }
    let run = run_id();
    let mut writers = Vec::new();
    for doc in 0..args.docs {
        for writer in 0..args.writers {
            let channel = doc::channel_for(&format!("bench-{run}-{doc}"), false);
            let mut client = Subscriber::connect(&args.target).await?;
            client.subscribe_private(&args.target, &channel).await?;
            writers.push((client, channel, writer));
        }
    }
    let payload = "x".repeat(args.payload);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = JoinSet::new();
    for (mut client, channel, writer) in writers {
        let payload = payload.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut base = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let op_id = format!("w{writer}-{n}");
                let sent = Instant::now();
                client.send(&submit_frame(&channel, base, &op_id, &payload)).await?;
                loop {
                    let frame = client.next_json().await?;
                    match doc_reply(&frame) {
                        Some(DocReply::Op(op)) => base = base.max(op.seq),
                        Some(DocReply::Ack(ack)) if ack.op_id == op_id => {
                            base = base.max(ack.seq);
                            latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                            break;
                        }
                        Some(DocReply::Error(error)) => return Err(doc_error(&error)),
                        _ => {}
                    }
                }
            }
            Ok::<_, CliError>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result.map_err(|e| CliError::Bench(e.to_string()))??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let total = latencies.len() as f64 / elapsed;
    println!(
        "doc-sequencer: {} docs × {} writers, {} B ops, {:.1} s\n  acked ops/s: {:.0} total, {:.0} per document\n  ack latency ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        args.docs,
        args.writers,
        args.payload,
        elapsed,
        total,
        total / args.docs as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}

/// Random typing: mostly one-character inserts near a moving cursor, some
/// deletes (a simple xorshift, fixed seed: every run builds the same text).
struct Typist {
    state: u64,
    cursor: usize,
}

impl Typist {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn edit(&mut self, len: usize) -> Delta {
        if self.next().is_multiple_of(50) {
            self.cursor = (self.next() as usize) % (len + 1);
        }
        self.cursor = self.cursor.min(len);
        let mut delta = Delta::new();
        if self.cursor > 0 && self.next().is_multiple_of(7) {
            self.cursor -= 1;
            delta.retain(self.cursor, None).delete(1);
        } else {
            let c = ["e", "t", "a", "o", " ", "n", "s", "\n"][(self.next() % 8) as usize];
            delta.retain(self.cursor, None).insert_text(c, None);
            self.cursor += 1;
        }
        delta
    }
}

const KID: &str = "bench";

fn bench_ring() -> KeyRing {
    KeyRing::single(KID, 1, Key::from_bytes(&[0x5e; 32])).expect("a fixed key")
}

/// Sends `frames` pipelined, then waits for as many acks.
async fn submit_batch(client: &mut Subscriber, frames: &[String]) -> Result<(), CliError> {
    for frame in frames {
        client.send(frame).await?;
    }
    let mut acked = 0;
    while acked < frames.len() {
        match doc_reply(&client.next_json().await?) {
            Some(DocReply::Ack(_)) => acked += 1,
            Some(DocReply::Error(error)) => return Err(doc_error(&error)),
            _ => {}
        }
    }
    Ok(())
}

pub async fn join(args: JoinArgs) -> Result<(), CliError> {
    if !(1..=1_000_000).contains(&args.ops) || args.tail >= args.ops || args.joins == 0 {
        return Err(CliError::Bench("--ops 1–1000000, --tail below --ops, --joins ≥ 1".into()));
    }
    let doc_id = format!("bench-join-{}", run_id());
    let channel = doc::channel_for(&doc_id, false);
    let mut ring = bench_ring();
    let mut author = Subscriber::connect(&args.target).await?;
    author.subscribe_private(&args.target, &channel).await?;

    // Build the history: every op sealed against its base, as a client would.
    let building = Instant::now();
    let mut session = DocSession::new(Delta::new(), 0, 0).map_err(|e| CliError::Bench(e.to_string()))?;
    let mut typist = Typist { state: 0x9e37_79b9_7f4a_7c15, cursor: 0 };
    let snapshot_at = args.ops - args.tail;
    let mut batch = Vec::new();
    for seq in 1..=args.ops {
        let op = typist.edit(session.canonical().len());
        let op_id = format!("a-{seq}");
        let sealed = payload::seal_op(&mut ring, KID, &doc_id, seq - 1, &op_id, &op)
            .map_err(|e| CliError::Bench(e.to_string()))?;
        session.handle_remote(seq, seq - 1, &op).map_err(|e| CliError::Bench(e.to_string()))?;
        batch.push(submit_frame(&channel, seq - 1, &op_id, &sealed));
        if batch.len() == 500 || seq == snapshot_at || seq == args.ops {
            submit_batch(&mut author, &batch).await?;
            batch.clear();
        }
        if seq == snapshot_at {
            let sealed = payload::seal_snapshot(&mut ring, KID, &doc_id, seq, session.canonical())
                .map_err(|e| CliError::Bench(e.to_string()))?;
            let upload = DocRequest::Snapshot(doc::SnapshotUpload { seq, payload: sealed, key_hint: None });
            author.send(&upload.encode(&channel)).await?;
            loop {
                match doc_reply(&author.next_json().await?) {
                    Some(DocReply::SnapshotStored(_)) => break,
                    Some(DocReply::Error(error)) => return Err(doc_error(&error)),
                    _ => {}
                }
            }
        }
    }
    let document_units = session.canonical().len();
    println!(
        "doc-join: built {} ops in {:.1} s; document {} UTF-16 units; snapshot at {}, {} ops after it",
        args.ops,
        building.elapsed().as_secs_f64(),
        document_units,
        snapshot_at,
        args.tail
    );

    let mut total_ms = Vec::new();
    let mut client_ms = Vec::new();
    for i in 0..args.joins {
        let started = Instant::now();
        let mut client = Subscriber::connect(&args.target).await?;
        client.subscribe_private(&args.target, &channel).await?;
        let mut doc =
            DocClient::new(&doc_id, false, bench_ring(), KID, None, &format!("j{i}"), DocConfig::default())
                .map_err(|e| CliError::Bench(e.to_string()))?;
        doc.join();
        let mut processing = Duration::ZERO;
        while !doc.is_ready() {
            while let Some(message) = doc.poll_transmit() {
                client.send(&message.encode(&channel)).await?;
            }
            let frame = client.next_json().await?;
            let event = frame["event"].as_str().unwrap_or_default();
            let handled = Instant::now();
            doc.handle_event(event, &frame["data"], None, Instant::now())
                .map_err(|e| CliError::Bench(e.to_string()))?;
            processing += handled.elapsed();
        }
        total_ms.push(started.elapsed().as_secs_f64() * 1e3);
        client_ms.push(processing.as_secs_f64() * 1e3);
        if doc.seq() != args.ops || doc.canonical() != Some(session.canonical()) {
            return Err(CliError::Bench("the joined document differs from the one built".into()));
        }
    }
    total_ms.sort_by(f64::total_cmp);
    client_ms.sort_by(f64::total_cmp);
    println!(
        "  join to ready, ms ({} joins): min {:.1}  median {:.1}  max {:.1}\n  of which client decrypt + replay, ms: min {:.1}  median {:.1}  max {:.1}",
        args.joins,
        total_ms[0],
        percentile(&total_ms, 0.5),
        total_ms[total_ms.len() - 1],
        client_ms[0],
        percentile(&client_ms, 0.5),
        client_ms[client_ms.len() - 1],
    );
    Ok(())
}
