//! The bus's ordered log: entries appended on subjects get one order (a sequence number)
//! that every follower sees alike, and an append can be made conditional on the last entry of
//! its subject (optimistic concurrency: of two appends that expect the same last entry, only
//! the first is taken). The relays order a meeting's end-to-end encryption commits with it.
//!
//! On NATS it is a JetStream stream (`Nats-Expected-Last-Subject-Sequence`, ordered
//! consumers); in process, [`MemoryLog`].

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::subject::matches;

/// Entries kept per subject: enough for a late follower to find the last one.
pub const KEPT_PER_SUBJECT: usize = 16;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The subject it was appended on.
    pub subject: String,
    /// Its place in the log: increasing across all subjects, not contiguous per subject.
    pub sequence: u64,
    /// The payload as appended.
    pub payload: Bytes,
}

/// How an append went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Taken, at this sequence.
    At(u64),
    /// Not taken: the subject's last entry was not the one expected; `last` is the one it
    /// is (0: the subject has none).
    Conflict {
        /// The sequence of the subject's last entry.
        last: u64,
    },
}

/// An in-process log: the [`crate::MemoryHub`]'s, and a relay's own when it has no bus.
#[derive(Debug, Default)]
pub struct MemoryLog {
    next: u64,
    subjects: HashMap<String, Vec<(u64, Bytes)>>,
    followers: Vec<(String, mpsc::UnboundedSender<LogEntry>)>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        MemoryLog::default()
    }

    /// Appends `payload` on `subject`, when `expect_last` is `None` or the sequence of the
    /// subject's last entry (0: none), and hands it to every follower whose pattern matches.
    pub fn append(&mut self, subject: &str, expect_last: Option<u64>, payload: Bytes) -> Appended {
        let last = self.last(subject);
        if expect_last.is_some_and(|expected| expected != last) {
            return Appended::Conflict { last };
        }
        self.next += 1;
        let sequence = self.next;
        let kept = self.subjects.entry(subject.to_owned()).or_default();
        kept.push((sequence, payload.clone()));
        if kept.len() > KEPT_PER_SUBJECT {
            kept.remove(0);
        }
        self.followers.retain(|(pattern, tx)| {
            !matches(pattern, subject)
                || tx
                    .send(LogEntry {
                        subject: subject.to_owned(),
                        sequence,
                        payload: payload.clone(),
                    })
                    .is_ok()
        });
        Appended::At(sequence)
    }

    /// The sequence of `subject`'s last entry (0: none).
    pub fn last(&self, subject: &str) -> u64 {
        self.subjects
            .get(subject)
            .and_then(|kept| kept.last())
            .map_or(0, |(sequence, _)| *sequence)
    }

    /// Follows the subjects matching `pattern`: first the last entry of each (in log order),
    /// then every entry appended from now on. Dropping the receiver stops it.
    pub fn follow(&mut self, pattern: &str) -> mpsc::UnboundedReceiver<LogEntry> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut lasts: Vec<LogEntry> = self
            .subjects
            .iter()
            .filter(|(subject, _)| matches(pattern, subject))
            .filter_map(|(subject, kept)| {
                kept.last().map(|(sequence, payload)| LogEntry {
                    subject: subject.clone(),
                    sequence: *sequence,
                    payload: payload.clone(),
                })
            })
            .collect();
        lasts.sort_by_key(|entry| entry.sequence);
        for entry in lasts {
            // The receiver is still here: it was made above.
            let _ = tx.send(entry);
        }
        self.followers.push((pattern.to_owned(), tx));
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_that_expects_another_last_entry_is_refused() {
        let mut log = MemoryLog::new();
        assert_eq!(
            log.append("h.m.c", Some(0), Bytes::from_static(b"a")),
            Appended::At(1)
        );
        assert_eq!(
            log.append("h.m.k", None, Bytes::from_static(b"k")),
            Appended::At(2)
        );
        // Built on 1, and 1 is still the last commit: taken though the log moved on.
        assert_eq!(
            log.append("h.m.c", Some(1), Bytes::from_static(b"b")),
            Appended::At(3)
        );
        assert_eq!(
            log.append("h.m.c", Some(1), Bytes::from_static(b"c")),
            Appended::Conflict { last: 3 }
        );
        assert_eq!(
            log.append("h.m.c", Some(0), Bytes::from_static(b"d")),
            Appended::Conflict { last: 3 }
        );
        assert_eq!(log.last("h.other.c"), 0);
    }

    #[test]
    fn followers_get_the_last_entries_then_new_ones_in_order() {
        let mut log = MemoryLog::new();
        for i in 0..20u8 {
            log.append("h.m.c", None, Bytes::from(vec![i]));
        }
        log.append("h.m.k", None, Bytes::from_static(b"k"));
        log.append("h.n.c", None, Bytes::from_static(b"other meeting"));
        let mut follower = log.follow("h.m.>");
        log.append("h.m.c", None, Bytes::from_static(b"new"));
        let mut seen = Vec::new();
        while let Ok(entry) = follower.try_recv() {
            seen.push((entry.subject, entry.sequence, entry.payload));
        }
        assert_eq!(
            seen,
            vec![
                ("h.m.c".to_owned(), 20, Bytes::from(vec![19u8])),
                ("h.m.k".to_owned(), 21, Bytes::from_static(b"k")),
                ("h.m.c".to_owned(), 23, Bytes::from_static(b"new")),
            ]
        );
        assert!(log.subjects["h.m.c"].len() <= KEPT_PER_SUBJECT);
        drop(follower);
        log.append("h.m.c", None, Bytes::new());
        assert!(log.followers.is_empty(), "a dropped follower is forgotten");
    }
}
