//! An app's request slots: joins and snapshot uploads in progress at once
//! (`[documents] max_concurrent_requests_per_app`), and a fair line for
//! joins waiting for one.
//!
//! A join that finds every slot taken waits in its app's line instead of
//! being refused (a refusal made clients retry into slots taken again:
//! 200 clients opening 100 documents took minutes). The line is served
//! round robin over connections, each connection's joins in their order,
//! so one connection opening many documents does not hold up the others.
//! It is bounded per app and per connection; beyond that, and for
//! snapshot uploads (retried at a later ack), the request is refused for
//! now as before. Whoever waits does so in its own task, never in a
//! connection's read loop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::StoreError;

/// Joins one connection may have waiting in its app's line.
pub const WAITING_PER_CONNECTION: usize = 16;

/// The slots of every app.
#[derive(Debug)]
pub struct Slots {
    apps: Mutex<HashMap<String, AppSlots>>,
    max_running: usize,
    max_waiting: usize,
}

#[derive(Debug, Default)]
struct AppSlots {
    running: usize,
    /// Waiting joins by connection (socket id), each connection's oldest
    /// first; `turns` is the round-robin order of connections with one.
    waiting: HashMap<String, VecDeque<oneshot::Sender<Slot>>>,
    turns: VecDeque<String>,
    waiting_count: usize,
}

/// One of an app's slots, given back (to the next in line, or freed) on
/// drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    app: String,
    /// False once the slot was handed over by hand (see `hand_over`).
    armed: bool,
}

impl Slots {
    /// `max_running` slots per app, `max_waiting` joins in its line.
    pub fn new(max_running: usize, max_waiting: usize) -> Arc<Slots> {
        Arc::new(Slots { apps: Mutex::default(), max_running: max_running.max(1), max_waiting })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, AppSlots>> {
        self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot now, or [`StoreError::Busy`] (snapshot uploads).
    pub fn try_take(self: &Arc<Self>, app: &str) -> Result<Slot, StoreError> {
        let mut apps = self.lock();
        let slots = apps.entry(app.to_owned()).or_default();
        if slots.running >= self.max_running {
            return Err(StoreError::Busy(slots.running));
        }
        slots.running += 1;
        Ok(Slot { slots: self.clone(), app: app.to_owned(), armed: true })
    }

    /// A slot now, or when the line reaches this connection's turn; `Busy`
    /// when the line is full (for the app or for `socket_id`).
    pub async fn take_in_turn(self: &Arc<Self>, app: &str, socket_id: &str) -> Result<Slot, StoreError> {
        let waiting = {
            let mut apps = self.lock();
            let slots = apps.entry(app.to_owned()).or_default();
            if slots.running < self.max_running && slots.waiting_count == 0 {
                slots.running += 1;
                return Ok(Slot { slots: self.clone(), app: app.to_owned(), armed: true });
            }
            let mine = slots.waiting.get(socket_id).map_or(0, VecDeque::len);
            if slots.waiting_count >= self.max_waiting || mine >= WAITING_PER_CONNECTION {
                return Err(StoreError::Busy(slots.running));
            }
            let (tx, rx) = oneshot::channel();
            if mine == 0 {
                slots.turns.push_back(socket_id.to_owned());
            }
            slots.waiting.entry(socket_id.to_owned()).or_default().push_back(tx);
            slots.waiting_count += 1;
            rx
        };
        // The sender is only dropped when a slot could not be handed over
        // (the line was torn down): refuse for now.
        waiting.await.map_err(|_| StoreError::Busy(self.max_running))
    }

    /// A slot is free: handed to the next connection in turn whose waiter
    /// is still there, else given back.
    fn hand_over(self: &Arc<Self>, app: &str) {
        let mut apps = self.lock();
        let Some(slots) = apps.get_mut(app) else { return };
        while let Some(socket_id) = slots.turns.pop_front() {
            let Some(queue) = slots.waiting.get_mut(&socket_id) else { continue };
            let Some(waiter) = queue.pop_front() else { continue };
            slots.waiting_count -= 1;
            if queue.is_empty() {
                slots.waiting.remove(&socket_id);
            } else {
                slots.turns.push_back(socket_id);
            }
            // Still counted as running: it changes hands.
            let slot = Slot { slots: self.clone(), app: app.to_owned(), armed: true };
            match waiter.send(slot) {
                Ok(()) => return,
                // Its task is gone (the connection closed): the next one.
                // (Disarmed: dropping it must not hand over again from
                // inside this lock.)
                Err(mut slot) => slot.armed = false,
            }
        }
        slots.running -= 1;
        if slots.running == 0 && slots.waiting_count == 0 {
            apps.remove(app);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.slots.hand_over(&self.app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_handed_round_robin_over_connections() {
        let slots = Slots::new(1, 100);
        let first = slots.try_take("app").unwrap();
        assert!(matches!(slots.try_take("app"), Err(StoreError::Busy(1))));
        // "a" queues three joins, then "b" one: b is served second.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (socket, n) in [("a", 1), ("a", 2), ("a", 3), ("b", 1)] {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = slots.take_in_turn("app", socket).await.unwrap();
                order.lock().unwrap().push(format!("{socket}{n}"));
                drop(slot);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a1", "b1", "a2", "a3"]);
        assert!(slots.lock().is_empty(), "every slot given back");
    }

    #[tokio::test]
    async fn the_line_is_bounded_per_app_and_per_connection() {
        let slots = Slots::new(1, 3);
        let _running = slots.try_take("app").unwrap();
        let mut waiting = Vec::new();
        for socket in ["a", "b", "c"] {
            let slots = slots.clone();
            waiting.push(tokio::spawn(async move { slots.take_in_turn("app", socket).await.map(drop) }));
            tokio::task::yield_now().await;
        }
        assert!(matches!(slots.take_in_turn("app", "d").await, Err(StoreError::Busy(_))), "app line full");
        // Another app is not affected.
        assert!(slots.take_in_turn("other", "a").await.is_ok());
        let per_connection = Slots::new(1, 1000);
        let _running = per_connection.try_take("app").unwrap();
        for _ in 0..WAITING_PER_CONNECTION {
            let slots = per_connection.clone();
            waiting.push(tokio::spawn(async move { slots.take_in_turn("app", "a").await.map(drop) }));
            tokio::task::yield_now().await;
        }
        assert!(matches!(per_connection.take_in_turn("app", "a").await, Err(StoreError::Busy(_))));
        assert!(per_connection.lock()["app"].waiting_count == WAITING_PER_CONNECTION);
        for task in waiting {
            task.abort();
        }
    }

    #[tokio::test]
    async fn a_waiter_that_went_away_is_skipped() {
        let slots = Slots::new(1, 10);
        let first = slots.try_take("app").unwrap();
        let gone = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.take_in_turn("app", "gone").await.map(drop) })
        };
        tokio::task::yield_now().await;
        let staying = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.take_in_turn("app", "staying").await.map(drop) })
        };
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(first);
        assert!(staying.await.unwrap().is_ok());
        assert!(slots.lock().is_empty());
    }
}
