//! What this node has decided and must tell the fleet: bans, learned hashes and
//! descriptors (state), and audit records (events). Decisions are applied locally first
//! and queued here without waiting; the link publishes them to JetStream when NATS is
//! reachable and removes each only once JetStream has acknowledged it, so decisions made
//! during an outage reach the fleet when NATS is back. Each message carries a
//! `Nats-Msg-Id`, so a retry after a lost acknowledgement is not stored twice.
//!
//! Memory is capped: past `max_messages`, the oldest audit events are dropped first (the
//! local audit trail keeps them), then the oldest state, each counted.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a message tells the fleet, as the `kind` label of the cluster metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Ban,
    Hashes,
    Descriptors,
    Event,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Ban, Kind::Hashes, Kind::Descriptors, Kind::Event];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ban => "ban",
            Kind::Hashes => "hashes",
            Kind::Descriptors => "descriptors",
            Kind::Event => "event",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One message waiting for JetStream's acknowledgement.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Position in this node's outbox since startup: the acknowledgement of a batch
    /// removes what is still queued up to it.
    pub sequence: u64,
    pub kind: Kind,
    pub subject: String,
    pub payload: Bytes,
    queued_at: Instant,
}

impl Outgoing {
    /// The `Nats-Msg-Id`: unique per node process and message.
    pub fn message_id(&self, node_id: &str) -> String {
        format!("{node_id}-{}", self.sequence)
    }
}

#[derive(Default)]
struct Queues {
    next_sequence: u64,
    state: VecDeque<Outgoing>,
    events: VecDeque<Outgoing>,
}

impl Queues {
    fn len(&self) -> usize {
        self.state.len() + self.events.len()
    }
}

/// The bounded queue between the synchronous backend calls and the link.
pub struct Outbox {
    queues: Mutex<Queues>,
    max_messages: usize,
    ready: tokio::sync::Notify,
    dropped: AtomicU64,
    refused: AtomicU64,
    published: [AtomicU64; 4],
}

impl Outbox {
    pub fn new(max_messages: usize) -> Self {
        Outbox {
            queues: Mutex::new(Queues::default()),
            max_messages,
            ready: tokio::sync::Notify::new(),
            dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            published: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a message; never blocks beyond a short lock.
    pub fn push(&self, kind: Kind, subject: String, payload: Bytes) {
        {
            let mut queues = self.lock();
            let sequence = queues.next_sequence;
            queues.next_sequence += 1;
            let message = Outgoing {
                sequence,
                kind,
                subject,
                payload,
                queued_at: Instant::now(),
            };
            match kind {
                Kind::Event => queues.events.push_back(message),
                _ => queues.state.push_back(message),
            }
            while queues.len() > self.max_messages {
                if queues.events.pop_front().is_none() {
                    queues.state.pop_front();
                }
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.ready.notify_one();
    }

    /// Waits until something is queued.
    pub async fn wait(&self) {
        loop {
            let notified = self.ready.notified();
            if self.lock().len() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Up to `limit` of the oldest messages, state before events, left queued until
    /// [`Outbox::acknowledged`].
    pub fn peek(&self, limit: usize) -> Vec<Outgoing> {
        let queues = self.lock();
        queues
            .state
            .iter()
            .chain(queues.events.iter())
            .take(limit)
            .cloned()
            .collect()
    }

    /// Removes the messages JetStream stored (messages dropped meanwhile are gone
    /// already).
    pub fn acknowledged(&self, stored: &[&Outgoing]) {
        self.remove(stored);
        for message in stored {
            self.published[message.kind.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes the messages JetStream refused for good, counting them.
    pub fn refused(&self, refused: &[&Outgoing]) {
        self.remove(refused);
        self.refused
            .fetch_add(refused.len() as u64, Ordering::Relaxed);
    }

    fn remove(&self, done: &[&Outgoing]) {
        let mut queues = self.lock();
        for message in done {
            let queue = match message.kind {
                Kind::Event => &mut queues.events,
                _ => &mut queues.state,
            };
            // Acknowledged messages are at or near the front: the batch was its head.
            if let Some(position) = queue
                .iter()
                .position(|queued| queued.sequence == message.sequence)
            {
                queue.remove(position);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// How long the oldest queued message has waited.
    pub fn oldest_age(&self) -> Duration {
        let queues = self.lock();
        [queues.state.front(), queues.events.front()]
            .into_iter()
            .flatten()
            .map(|message| message.queued_at.elapsed())
            .max()
            .unwrap_or_default()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn published(&self, kind: Kind) -> u64 {
        self.published[kind.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(outbox: &Outbox, kind: Kind, text: &str) {
        outbox.push(kind, "s".into(), Bytes::from(text.to_string()));
    }

    #[test]
    fn state_goes_first_and_acknowledged_messages_leave() {
        let outbox = Outbox::new(100);
        push(&outbox, Kind::Event, "e1");
        push(&outbox, Kind::Ban, "b1");
        push(&outbox, Kind::Hashes, "h1");
        let batch = outbox.peek(2);
        let texts: Vec<&[u8]> = batch.iter().map(|m| m.payload.as_ref()).collect();
        assert_eq!(texts, [b"b1".as_ref(), b"h1".as_ref()]);
        outbox.acknowledged(&batch.iter().collect::<Vec<_>>());
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.published(Kind::Ban), 1);
        assert_eq!(outbox.peek(10)[0].payload.as_ref(), b"e1");
    }

    #[test]
    fn overflow_drops_events_before_state() {
        let outbox = Outbox::new(3);
        push(&outbox, Kind::Ban, "b1");
        push(&outbox, Kind::Event, "e1");
        push(&outbox, Kind::Ban, "b2");
        push(&outbox, Kind::Ban, "b3");
        assert_eq!(outbox.dropped(), 1);
        let texts: Vec<Bytes> = outbox.peek(10).into_iter().map(|m| m.payload).collect();
        assert_eq!(texts, ["b1", "b2", "b3"]);
        push(&outbox, Kind::Ban, "b4");
        let texts: Vec<Bytes> = outbox.peek(10).into_iter().map(|m| m.payload).collect();
        assert_eq!(texts, ["b2", "b3", "b4"]);
        assert_eq!(outbox.dropped(), 2);
    }

    #[test]
    fn message_ids_are_unique_per_node() {
        let outbox = Outbox::new(10);
        push(&outbox, Kind::Ban, "a");
        push(&outbox, Kind::Ban, "b");
        let ids: Vec<String> = outbox.peek(10).iter().map(|m| m.message_id("n1")).collect();
        assert_eq!(ids, ["n1-0", "n1-1"]);
    }
}
