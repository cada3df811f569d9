use std::time::Duration;

use serde_json::json;
use serde_json::value::RawValue;

use super::*;
use crate::protocol::server::EXCLUDED;

const CH: &str = "private-chat";

fn at(offset: u64, epoch: &str) -> Position {
    Position { offset, epoch: epoch.into() }
}

fn live(offset: u64, epoch: &str) -> Inbound {
    Inbound {
        channel: Some(CH.into()),
        event: "m".into(),
        data: json!({ "n": offset }),
        user_id: None,
        position: Some(at(offset, epoch)),
    }
}

fn kept(offset: u64) -> HistoryEvent {
    HistoryEvent {
        offset,
        event: "m".into(),
        data: RawValue::from_string(format!("{{\"n\":{offset}}}")).unwrap(),
        user_id: None,
        time_ms: 0,
    }
}

fn page(
    id: &str,
    epoch: &str,
    head: u64,
    offsets: std::ops::RangeInclusive<u64>,
    more: bool,
    gap: Option<Gap>,
) -> HistoryPage {
    HistoryPage {
        request_id: Some(id.into()),
        epoch: epoch.into(),
        head,
        events: offsets.map(kept).collect(),
        more,
        gap,
    }
}

/// What came out: delivered offsets as numbers, reads as `read since`,
/// outcomes as themselves.
#[derive(Debug, PartialEq)]
enum Out {
    Got(u64),
    Read(String, u64),
    Done(CatchUpOutcome),
}

fn drain(streams: &mut Streams) -> Vec<Out> {
    std::iter::from_fn(|| streams.poll())
        .map(|output| match output {
            StreamOutput::Deliver(m) => Out::Got(m.data["n"].as_u64().unwrap()),
            StreamOutput::Read { read, .. } => Out::Read(read.request_id.unwrap(), read.since.unwrap()),
            StreamOutput::Outcome { outcome, .. } => Out::Done(outcome),
        })
        .collect()
}

fn t(ms: u64) -> Instant {
    thread_local!(static START: Instant = Instant::now());
    START.with(|start| *start + Duration::from_millis(ms))
}

fn following_from(offset: u64) -> Streams {
    let mut streams = Streams::new(100, Duration::from_secs(10));
    streams.subscribed(CH, Some(at(offset, "e")), t(0));
    streams
}

#[test]
fn live_events_in_order_go_through_and_duplicates_do_not() {
    let mut s = following_from(3);
    for offset in [4, 5, 5, 4, 6] {
        s.live(live(offset, "e"), t(1));
    }
    assert_eq!(drain(&mut s), [Out::Got(4), Out::Got(5), Out::Got(6)]);
    // Resubscribed with nothing new: no read.
    s.subscribed(CH, Some(at(6, "e")), t(2));
    assert_eq!(drain(&mut s), []);
}

#[test]
fn a_resubscription_behind_the_head_reads_what_was_missed_then_releases_the_held() {
    let mut s = following_from(3);
    s.subscribed(CH, Some(at(9, "e")), t(1));
    assert_eq!(drain(&mut s), [Out::Read("catch-up-1".into(), 3)]);
    // Live events meanwhile are held: one of them the page has too.
    s.live(live(9, "e"), t(2));
    s.live(live(10, "e"), t(2));
    assert_eq!(drain(&mut s), []);
    s.page(CH, page("catch-up-1", "e", 9, 4..=6, true, None), t(3));
    assert_eq!(drain(&mut s), [Out::Got(4), Out::Got(5), Out::Got(6), Out::Read("catch-up-1".into(), 6)]);
    s.page(CH, page("catch-up-1", "e", 10, 7..=10, false, None), t(4));
    assert_eq!(
        drain(&mut s),
        [
            Out::Got(7),
            Out::Got(8),
            Out::Got(9),
            Out::Got(10),
            Out::Done(CatchUpOutcome::Complete { events: 7 })
        ]
    );
    s.live(live(11, "e"), t(5));
    assert_eq!(drain(&mut s), [Out::Got(11)]);
}

#[test]
fn a_live_gap_starts_a_catch_up_and_stale_answers_are_ignored() {
    let mut s = following_from(3);
    s.live(live(6, "e"), t(1));
    assert_eq!(drain(&mut s), [Out::Read("catch-up-1".into(), 3)]);
    // The connection dropped: the resubscription reads again, and the
    // first read's answer (a dead request) changes nothing.
    s.subscribed(CH, Some(at(7, "e")), t(2));
    assert_eq!(drain(&mut s), [Out::Read("catch-up-2".into(), 3)]);
    s.page(CH, page("catch-up-1", "e", 7, 4..=7, false, None), t(3));
    assert_eq!(drain(&mut s), []);
    s.page(CH, page("catch-up-2", "e", 7, 4..=7, false, None), t(3));
    assert_eq!(
        drain(&mut s),
        [
            Out::Got(4),
            Out::Got(5),
            Out::Got(6),
            Out::Got(7),
            Out::Done(CatchUpOutcome::Complete { events: 4 })
        ]
    );
}

#[test]
fn what_the_server_no_longer_has_is_a_gap_and_another_epoch_starts_over() {
    let mut s = following_from(3);
    s.subscribed(CH, Some(at(20, "e")), t(1));
    drain(&mut s);
    s.page(CH, page("catch-up-1", "e", 20, 11..=20, false, Some(Gap::PositionExpired)), t(2));
    let out = drain(&mut s);
    assert_eq!(out.len(), 11);
    assert_eq!(out[10], Out::Done(CatchUpOutcome::Gap { gap: Gap::PositionExpired, events: 10 }));
    // The server restarted without its events: a new epoch from 1.
    s.subscribed(CH, Some(at(2, "f")), t(3));
    assert_eq!(drain(&mut s), [Out::Read("catch-up-2".into(), 20)]);
    s.page(CH, page("catch-up-2", "f", 2, 1..=2, false, Some(Gap::EpochChanged)), t(4));
    assert_eq!(
        drain(&mut s),
        [Out::Got(1), Out::Got(2), Out::Done(CatchUpOutcome::Gap { gap: Gap::EpochChanged, events: 2 })]
    );
    s.live(live(3, "f"), t(5));
    assert_eq!(drain(&mut s), [Out::Got(3)]);
}

#[test]
fn an_empty_stream_at_subscribe_continues_into_its_first_epoch() {
    let mut s = Streams::new(100, Duration::from_secs(10));
    s.subscribed(CH, Some(at(0, "")), t(0));
    s.live(live(1, "new"), t(1));
    s.live(live(2, "new"), t(1));
    assert_eq!(drain(&mut s), [Out::Got(1), Out::Got(2)]);
}

#[test]
fn refusals_are_retried_when_transient_then_reported_and_live_goes_on() {
    let mut s = following_from(3);
    s.live(live(6, "e"), t(0));
    drain(&mut s);
    let refusal = |code: HistoryErrorCode| HistoryError {
        request_id: Some("catch-up-1".into()),
        code,
        message: "no".into(),
    };
    s.refused(CH, refusal(HistoryErrorCode::RateLimited), t(0));
    assert_eq!((drain(&mut s), s.poll_timeout()), (vec![], Some(t(500))));
    s.handle_timeout(t(500));
    assert_eq!(drain(&mut s), [Out::Read("catch-up-1".into(), 3)]);
    s.refused(CH, refusal(HistoryErrorCode::HistoryOff), t(600));
    let failed = CatchUpOutcome::Failed {
        reason: CatchUpFailure::Refused { code: HistoryErrorCode::HistoryOff, message: "no".into() },
        events: 0,
    };
    assert_eq!(drain(&mut s), [Out::Done(failed), Out::Got(6)]);
}

#[test]
fn no_answer_in_time_fails_the_catch_up_and_too_many_held_does_too() {
    let mut s = following_from(3);
    s.live(live(6, "e"), t(0));
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t(10_000)));
    s.handle_timeout(t(10_000));
    let failed = CatchUpOutcome::Failed { reason: CatchUpFailure::NoAnswer, events: 0 };
    assert_eq!(drain(&mut s), [Out::Done(failed), Out::Got(6)]);

    let mut s = Streams::new(2, Duration::from_secs(10));
    s.subscribed(CH, Some(at(3, "e")), t(0));
    for offset in 6..=8 {
        s.live(live(offset, "e"), t(0));
    }
    let failed = CatchUpOutcome::Failed { reason: CatchUpFailure::TooManyHeld, events: 0 };
    assert_eq!(
        drain(&mut s),
        [Out::Read("catch-up-1".into(), 3), Out::Done(failed), Out::Got(6), Out::Got(7), Out::Got(8)]
    );
}

fn excluded(offset: u64) -> Inbound {
    Inbound { event: EXCLUDED.into(), data: json!({}), ..live(offset, "e") }
}

#[test]
fn positions_this_connection_skips_count_but_are_never_delivered() {
    let mut s = following_from(3);
    // Its own client event (4) between two others.
    s.live(excluded(4), t(0));
    s.live(live(5, "e"), t(0));
    assert_eq!(drain(&mut s), [Out::Got(5)], "no gap, no read");
    // Away: 6 was someone else's, 7 its own (told before the drop), 8 live.
    s.live(excluded(7), t(1));
    assert_eq!(drain(&mut s), [Out::Read("catch-up-1".into(), 5)]);
    s.live(live(8, "e"), t(1));
    s.page(CH, page("catch-up-1", "e", 8, 6..=8, false, None), t(2));
    assert_eq!(
        drain(&mut s),
        [Out::Got(6), Out::Got(8), Out::Done(CatchUpOutcome::Complete { events: 2 })],
        "its own event is not handed back, the held 8 not twice"
    );
    // Never a message for the app, even first thing on a channel.
    let mut fresh = Streams::new(10, Duration::from_secs(10));
    fresh.live(excluded(1), t(0));
    fresh.live(live(2, "e"), t(0));
    assert_eq!(drain(&mut fresh), [Out::Got(2)]);
}

#[test]
fn its_own_event_whose_notice_a_drop_took_is_not_handed_back() {
    let mut s = following_from(3);
    let own = json!({"n": 4, "body": "mine"});
    s.sent(CH, "client-chat", &own);
    // Confirmed by its notice: nothing is remembered any more.
    let mut notice = excluded(4);
    notice.data = json!({"own": true});
    s.live(notice, t(0));
    assert_eq!(drain(&mut s), []);
    // Sent just before a drop: the notice never came.
    let lost = json!({"n": 5, "body": "mine too"});
    s.sent(CH, "client-chat", &lost);
    s.subscribed(CH, Some(at(6, "e")), t(1));
    assert_eq!(drain(&mut s), [Out::Read("catch-up-1".into(), 4)]);
    let mut page = page("catch-up-1", "e", 6, 5..=6, false, None);
    page.events[0].event = "client-chat".into();
    page.events[0].data = RawValue::from_string(lost.to_string()).unwrap();
    s.page(CH, page, t(2));
    assert_eq!(drain(&mut s), [Out::Got(6), Out::Done(CatchUpOutcome::Complete { events: 1 })]);
}
