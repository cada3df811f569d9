//! Process-wide counters, rendered in the Prometheus text format at
//! `GET /metrics`. Lock-free atomics; nothing here ever sees payloads.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the fan-out latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25];

/// Time from receiving an event to queueing it for every subscriber.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// Every metric the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    /// Channel subscriptions (connection × channel).
    pub subscriptions: Gauge,
    /// Frames received from clients.
    pub messages_in: Counter,
    /// Frames queued to clients by fan-out.
    pub messages_out: Counter,
    /// Bytes received from clients.
    pub bytes_in: Counter,
    /// Bytes queued to clients by fan-out.
    pub bytes_out: Counter,
    /// Connections closed because their outbound queue was full.
    pub slow_consumers: Counter,
    /// HTTP API requests.
    pub http_requests: Counter,
    /// Webhook events dropped: the app's queue or an endpoint's backlog
    /// was full, or the endpoint refused them for `webhook_retry_secs`
    /// (shared with the apps' delivery tasks).
    pub webhooks_dropped: std::sync::Arc<Counter>,
    /// Frames refused for their rate (pusher:error 4301, doc `rate_limited`).
    pub rate_limited: Counter,
    /// Connections closed for breaking the WebSocket protocol (1002, 1007, 1009).
    pub protocol_errors: Counter,
    /// TCP connections refused at the server's connection cap.
    pub connections_refused: Counter,
    /// Presence, occupancy or terminate news the cluster bus could not take
    /// (repaired by the periodic resync).
    pub cluster_deferred: Counter,

    /// Fan-out latency.
    pub fanout_latency: Histogram,
    /// Errors sent to clients, by Pusher code.
    errors: Mutex<Vec<(u16, u64)>>,
}

impl Metrics {
    /// Counts one error with `code`.
    pub fn error(&self, code: u16) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        match errors.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => errors.push((code, 1)),
        }
    }

    /// The Prometheus text exposition.
    /// The Prometheus text, with the cluster bus's `(lost, dropped)` counts.
    pub fn render_with_bus(&self, (lost, dropped): (usize, usize)) -> String {
        let mut out = self.render();
        let _ = writeln!(
            out,
            "# HELP sealcast_cluster_lost_total Cluster messages lost after the bus took them (Redis failed).\n\
             # TYPE sealcast_cluster_lost_total counter\nsealcast_cluster_lost_total {lost}\n\
             # HELP sealcast_cluster_inbox_dropped_total Messages from other nodes dropped: this node fell behind (healed by resync).\n\
             # TYPE sealcast_cluster_inbox_dropped_total counter\nsealcast_cluster_inbox_dropped_total {dropped}"
        );
        out
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric(
            "sealcast_connections",
            "gauge",
            "Open WebSocket connections.",
            self.connections.get().to_string(),
        );
        metric(
            "sealcast_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.connections_total.get().to_string(),
        );
        metric(
            "sealcast_subscriptions",
            "gauge",
            "Channel subscriptions.",
            self.subscriptions.get().to_string(),
        );
        metric(
            "sealcast_messages_in_total",
            "counter",
            "Frames received from clients.",
            self.messages_in.get().to_string(),
        );
        metric(
            "sealcast_messages_out_total",
            "counter",
            "Frames queued to clients by fan-out.",
            self.messages_out.get().to_string(),
        );
        metric(
            "sealcast_bytes_in_total",
            "counter",
            "Bytes received from clients.",
            self.bytes_in.get().to_string(),
        );
        metric(
            "sealcast_bytes_out_total",
            "counter",
            "Bytes queued to clients by fan-out.",
            self.bytes_out.get().to_string(),
        );
        metric(
            "sealcast_slow_consumers_total",
            "counter",
            "Connections closed as slow consumers.",
            self.slow_consumers.get().to_string(),
        );
        metric(
            "sealcast_http_requests_total",
            "counter",
            "HTTP API requests.",
            self.http_requests.get().to_string(),
        );
        let counters = [
            (
                "sealcast_webhooks_dropped_total",
                "Webhook events dropped: a queue was full, or the endpoint failed for webhook_retry_secs.",
                &*self.webhooks_dropped,
            ),
            ("sealcast_rate_limited_total", "Client frames refused for their rate.", &self.rate_limited),
            (
                "sealcast_protocol_errors_total",
                "Connections closed for breaking the WebSocket protocol.",
                &self.protocol_errors,
            ),
            (
                "sealcast_connections_refused_total",
                "TCP connections refused at the connection cap.",
                &self.connections_refused,
            ),
            (
                "sealcast_cluster_deferred_total",
                "Presence/occupancy news the cluster bus could not take (healed by resync).",
                &self.cluster_deferred,
            ),
        ];
        for (name, help, counter) in counters {
            metric(name, "counter", help, counter.get().to_string());
        }
        let _ = writeln!(
            out,
            "# HELP sealcast_errors_total Errors sent to clients, by Pusher code.\n# TYPE sealcast_errors_total counter"
        );
        for (code, n) in self.errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "sealcast_errors_total{{code=\"{code}\"}} {n}");
        }
        let h = &self.fanout_latency;
        let _ = writeln!(
            out,
            "# HELP sealcast_fanout_seconds Time from receiving an event to queueing it for all subscribers.\n# TYPE sealcast_fanout_seconds histogram"
        );
        for (bucket, bound) in h.buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "sealcast_fanout_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "sealcast_fanout_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ =
            writeln!(out, "sealcast_fanout_seconds_sum {}", h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "sealcast_fanout_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.connections.inc();
        m.error(4009);
        m.error(4009);
        m.fanout_latency.observe(Duration::from_micros(200));
        let text = m.render();
        assert!(text.contains("sealcast_connections 1\n"));
        assert!(text.contains("sealcast_errors_total{code=\"4009\"} 2\n"));
        assert!(text.contains("sealcast_fanout_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("sealcast_fanout_seconds_bucket{le=\"0.0001\"} 0\n"));
        assert!(text.contains("sealcast_fanout_seconds_count 1\n"));
    }
}
