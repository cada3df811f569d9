//! The one page rule both stores answer reads with: where a read starts
//! (and whether that is a [`Gap`]), and whether more follows.

use sealcast_core::protocol::history::{Gap, HistoryEvent, HistoryPage, Read};

use super::HistoryStoreError;

/// A stream as kept now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamState {
    /// Its epoch ("" for a stream nothing is kept of: never published,
    /// or expired and forgotten).
    pub epoch: String,
    /// Its newest offset (0: none).
    pub head: u64,
    /// Its oldest kept offset (`None`: nothing kept).
    pub first: Option<u64>,
}

/// How much one page may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBounds {
    /// Events.
    pub events: usize,
    /// Bytes of kept events ([`super::NewEvent::cost`]); at least one
    /// event always fits.
    pub bytes: usize,
}

/// Which events a read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The oldest events after `after`, ascending.
    After(u64),
    /// The newest events before `before`, returned ascending.
    Before(u64),
}

/// Where a read starts, and the gap if that is not where it asked.
pub fn plan(read: &Read, stream: &StreamState) -> Result<(Window, Option<Gap>), HistoryStoreError> {
    let Some(since) = read.since else {
        let before = read.before.unwrap_or(u64::MAX).min(stream.head.saturating_add(1));
        return Ok((Window::Before(before), None));
    };
    let oldest = stream.first.unwrap_or(stream.head.saturating_add(1));
    // The empty epoch at offset 0 is "nothing seen yet" (a subscriber told
    // the stream was empty): whatever stream exists now continues it.
    let from_nothing = since == 0 && read.epoch.as_deref() == Some("");
    if read.epoch.as_ref().is_some_and(|epoch| *epoch != stream.epoch) && !from_nothing {
        return Ok((Window::After(oldest.saturating_sub(1)), Some(Gap::EpochChanged)));
    }
    if since > stream.head {
        return Err(HistoryStoreError::PastHead);
    }
    if oldest > since.saturating_add(1) {
        return Ok((Window::After(oldest.saturating_sub(1)), Some(Gap::PositionExpired)));
    }
    Ok((Window::After(since), None))
}

/// The page of `events` (ascending) read through `window`.
pub fn finish(
    read: &Read,
    stream: StreamState,
    window: Window,
    gap: Option<Gap>,
    events: Vec<HistoryEvent>,
) -> HistoryPage {
    let more = match window {
        Window::After(_) => events.last().is_some_and(|last| last.offset < stream.head),
        Window::Before(_) => {
            events.first().zip(stream.first).is_some_and(|(first, oldest)| first.offset > oldest)
        }
    };
    HistoryPage {
        request_id: read.request_id.clone(),
        epoch: stream.epoch,
        head: stream.head,
        events,
        more,
        gap,
    }
}

/// Whether a page of `count` events and `bytes` bytes can take one more
/// of `cost` bytes.
pub fn fits(bounds: PageBounds, count: usize, bytes: usize, cost: usize) -> bool {
    count < bounds.events && (count == 0 || bytes + cost <= bounds.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(head: u64, first: Option<u64>) -> StreamState {
        StreamState { epoch: "e".into(), head, first }
    }

    fn since(offset: u64, epoch: Option<&str>) -> Read {
        Read { since: Some(offset), epoch: epoch.map(str::to_owned), ..Read::default() }
    }

    #[test]
    fn catching_up_continues_or_names_the_gap() {
        let kept = stream(10, Some(4));
        assert_eq!(plan(&since(3, Some("e")), &kept), Ok((Window::After(3), None)));
        assert_eq!(plan(&since(10, Some("e")), &kept), Ok((Window::After(10), None)));
        assert_eq!(plan(&since(2, Some("e")), &kept), Ok((Window::After(3), Some(Gap::PositionExpired))));
        assert_eq!(plan(&since(0, None), &kept), Ok((Window::After(3), Some(Gap::PositionExpired))));
        assert_eq!(plan(&since(5, Some("other")), &kept), Ok((Window::After(3), Some(Gap::EpochChanged))));
        assert_eq!(plan(&since(11, Some("e")), &kept), Err(HistoryStoreError::PastHead));
        // Everything trimmed: whoever is behind the head lost events.
        let empty = stream(10, None);
        assert_eq!(plan(&since(10, Some("e")), &empty), Ok((Window::After(10), None)));
        assert_eq!(plan(&since(9, Some("e")), &empty), Ok((Window::After(10), Some(Gap::PositionExpired))));
        // A stream nothing is kept of: a known position was lost.
        let none = StreamState::default();
        assert_eq!(plan(&since(0, None), &none), Ok((Window::After(0), None)));
        assert_eq!(plan(&since(4, Some("e")), &none), Ok((Window::After(0), Some(Gap::EpochChanged))));
        // Told "empty" at subscribe: a stream started since is all new.
        assert_eq!(plan(&since(0, Some("")), &kept), Ok((Window::After(3), Some(Gap::PositionExpired))));
        assert_eq!(plan(&since(0, Some("")), &stream(10, Some(1))), Ok((Window::After(0), None)));
    }

    #[test]
    fn scrolling_back_starts_at_the_head_or_before() {
        let kept = stream(10, Some(4));
        assert_eq!(plan(&Read::default(), &kept), Ok((Window::Before(11), None)));
        let before = |b| Read { before: Some(b), ..Read::default() };
        assert_eq!(plan(&before(7), &kept), Ok((Window::Before(7), None)));
        assert_eq!(plan(&before(99), &kept), Ok((Window::Before(11), None)));
    }

    #[test]
    fn a_page_always_takes_one_event() {
        let bounds = PageBounds { events: 2, bytes: 10 };
        assert!(fits(bounds, 0, 0, 100));
        assert!(!fits(bounds, 1, 100, 1));
        assert!(fits(bounds, 1, 4, 6));
        assert!(!fits(bounds, 2, 0, 0));
    }
}
