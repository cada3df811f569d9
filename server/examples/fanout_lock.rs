//! The part of a fan-out that runs under an app's registry lock, measured
//! on one thread and on two threads publishing at once: how much of one
//! app's fan-out work can proceed in parallel (docs/scaling.md, "One node:
//! cores and the app lock").
//!
//! ```sh
//! cargo run --release -p sealcast-server --example fanout_lock -- [SUBSCRIBERS] [EVENTS] [REPEATS] [ROUNDS]
//! ```
//!
//! The connections have no socket, so a publish is exactly the part done
//! under the lock: for each subscriber, the frame (reference counted) onto
//! its queue. No system call, no write. Each measurement publishes EVENTS
//! events per thread, REPEATS times; between repeats (not timed) the
//! queues are emptied as a writer would, keeping their slots (a repeat
//! must last tens of milliseconds: a thread's wake-up at the barriers is
//! not free here). Each round runs, interleaved: one thread on
//! one channel; two threads on two channels of the same app; two threads
//! on the same channel (which stays serialized: every subscriber must see
//! one channel's events in one order).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sealcast_core::protocol::ChannelName;
use sealcast_server::app::bus::LocalBroker;
use sealcast_server::app::{App, ConnHandle};
use sealcast_server::config::AppConfig;
use sealcast_server::metrics::Metrics;
use sealcast_server::ws::outbound::QueueLimits;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers"));
    let subscribers = args.next().unwrap_or(1000);
    let events = args.next().unwrap_or(1000);
    let repeats = args.next().unwrap_or(10);
    let rounds = args.next().unwrap_or(5);
    println!(
        "{subscribers} subscribers per channel, {events} events per thread × {repeats}, {rounds} rounds"
    );
    println!("round  case                          deliveries/s   ns/delivery   vs 1 thread");
    for round in 1..=rounds {
        let (one, subscribe) = run(1, false, subscribers, events, repeats);
        report(round, "1 thread, 1 channel", one, one);
        let (two, _) = run(2, false, subscribers, events, repeats);
        report(round, "2 threads, 2 channels", two, one);
        let (same, _) = run(2, true, subscribers, events, repeats);
        report(round, "2 threads, 1 channel", same, one);
        println!("{round:>5}  a subscribe (write lock)      {:>12.2} µs", subscribe.as_secs_f64() * 1e6);
    }
}

fn report(round: usize, case: &str, rate: f64, baseline: f64) {
    println!("{round:>5}  {case:<28}  {rate:>12.0}   {:>11.1}   {:>10.2}", 1e9 / rate, rate / baseline);
}

/// Deliveries per second queued by `threads` threads publishing `events`
/// each, `repeats` times, to their own channel or (`same`) to one shared
/// channel; and the mean time of one subscribe while setting up.
fn run(threads: usize, same: bool, subscribers: usize, events: usize, repeats: usize) -> (f64, Duration) {
    let app = Arc::new(App::new(
        AppConfig::new("bench", "key", "secret"),
        Arc::new(LocalBroker::new()),
        Arc::new(sealcast_server::history::History::in_memory()),
        &sealcast_server::metrics::Metrics::default(),
    ));
    let metrics = Arc::new(Metrics::default());
    let channels: Vec<String> = (0..threads).map(|t| format!("bench-{}", if same { 0 } else { t })).collect();
    let limits = QueueLimits { frames: events * threads + 1, bytes: usize::MAX / 2 };
    let mut handles = Vec::new();
    let mut subscribing = Duration::ZERO;
    for (t, channel) in channels.iter().enumerate().take(if same { 1 } else { threads }) {
        let name = ChannelName::parse(channel).expect("valid channel");
        for s in 0..subscribers {
            let socket_id: Arc<str> = format!("{t}.{s}").into();
            let (handle, _close) = ConnHandle::new(socket_id.clone(), None, limits);
            assert!(app.connect(handle.clone()).is_ok());
            let began = Instant::now();
            app.subscribe(&socket_id, &name, None, &metrics).expect("subscribed");
            subscribing += began.elapsed();
            handles.push(handle);
        }
    }
    // Each repeat: everyone waits at `start`, the publishers publish, and
    // everyone waits at `done`; the queues are emptied before the next.
    let (start, done) = (Arc::new(Barrier::new(threads + 1)), Arc::new(Barrier::new(threads + 1)));
    let publishers: Vec<_> = channels
        .into_iter()
        .map(|channel| {
            let (app, metrics, start, done) = (app.clone(), metrics.clone(), start.clone(), done.clone());
            std::thread::spawn(move || {
                // Each publisher its own frame, as in the server (one per event).
                let frame = Bytes::from(vec![b'x'; 200]);
                // One untimed repeat first: the queues grow their slots.
                for _ in 0..=repeats {
                    start.wait();
                    for _ in 0..events {
                        let sent = app.publish(&channel, &frame, None, &metrics).expect("not clustered");
                        assert_eq!(sent, subscribers);
                    }
                    done.wait();
                }
            })
        })
        .collect();
    let mut timed = Duration::ZERO;
    for repeat in 0..=repeats {
        start.wait();
        let began = Instant::now();
        done.wait();
        if repeat > 0 {
            timed += began.elapsed();
        }
        handles.iter().for_each(ConnHandle::discard_queued);
    }
    publishers.into_iter().for_each(|p| p.join().expect("publisher"));
    let rate = (threads * subscribers * events * repeats) as f64 / timed.as_secs_f64();
    (rate, subscribing / handles.len() as u32)
}
