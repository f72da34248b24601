//! The bus subjects of one meeting. Meeting ids may hold `.`, which separates NATS subject
//! tokens, and never `~`, so `.` becomes `~` in the subject. Pure.
//!
//! Events and media are `<prefix>.m.<meeting>.…` (plain messages); the end-to-end encryption
//! handshakes are `<prefix>.h.<meeting>.…` in the bus's ordered log.

/// The subjects of one meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingSubjects {
    /// Events (`MeshEvent`).
    pub events: String,
    /// Media (header and frame).
    pub media: String,
    /// Both, for the one subscription a relay holds per meeting.
    pub all: String,
    /// Commits and foundings of the meeting's MLS group (ordered, conditional appends).
    pub commits: String,
    /// Key packages of participants waiting to be added.
    pub key_packages: String,
    /// Both, for the relay's one follower of the meeting's handshakes.
    pub handshakes: String,
}

/// The subjects of the ordered log under `prefix`.
pub fn log_subjects(prefix: &str) -> String {
    format!("{prefix}.h.>")
}

/// The JetStream stream of the ordered log under `prefix`: relays with different prefixes
/// keep different streams.
pub fn log_stream(prefix: &str) -> String {
    let name: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("VIDEOCALL_{name}_HANDSHAKES")
}

impl MeetingSubjects {
    /// The subjects of `meeting` under `prefix` (e.g. `vc`).
    pub fn new(prefix: &str, meeting: &str) -> Self {
        let token = meeting.replace('.', "~");
        let base = format!("{prefix}.m.{token}");
        let log = format!("{prefix}.h.{token}");
        MeetingSubjects {
            events: format!("{base}.ev"),
            media: format!("{base}.media"),
            all: format!("{base}.>"),
            commits: format!("{log}.c"),
            key_packages: format!("{log}.k"),
            handshakes: format!("{log}.>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_in_meeting_ids_stay_inside_one_token() {
        let a = MeetingSubjects::new("vc", "team.sync");
        assert_eq!(a.events, "vc.m.team~sync.ev");
        assert_eq!(a.media, "vc.m.team~sync.media");
        assert_eq!(a.all, "vc.m.team~sync.>");
        assert_ne!(a, MeetingSubjects::new("vc", "team"));
        assert!(videocall_bus::subject::check_subject(&a.events).is_ok());
        assert!(videocall_bus::subject::check_pattern(&a.all).is_ok());
        assert!(videocall_bus::subject::matches(&a.all, &a.media));
        assert!(!videocall_bus::subject::matches(
            &MeetingSubjects::new("vc", "team").all,
            &a.media
        ));
        assert_eq!(a.commits, "vc.h.team~sync.c");
        assert!(videocall_bus::subject::matches(
            &a.handshakes,
            &a.key_packages
        ));
        assert!(videocall_bus::subject::matches(
            &log_subjects("vc"),
            &a.commits
        ));
        assert!(!videocall_bus::subject::matches(&a.all, &a.commits));
        assert_eq!(log_stream("vc.test-1"), "VIDEOCALL_VC_TEST_1_HANDSHAKES");
    }
}
