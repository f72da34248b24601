//! The bus subjects of one meeting. Meeting ids may hold `.`, which separates NATS subject
//! tokens, and never `~`, so `.` becomes `~` in the subject. Pure.

/// The subjects of one meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingSubjects {
    /// Events (`MeshEvent`).
    pub events: String,
    /// Media (header and frame).
    pub media: String,
    /// Both, for the one subscription a relay holds per meeting.
    pub all: String,
}

impl MeetingSubjects {
    /// The subjects of `meeting` under `prefix` (e.g. `vc`).
    pub fn new(prefix: &str, meeting: &str) -> Self {
        let base = format!("{prefix}.m.{}", meeting.replace('.', "~"));
        MeetingSubjects {
            events: format!("{base}.ev"),
            media: format!("{base}.media"),
            all: format!("{base}.>"),
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
    }
}
