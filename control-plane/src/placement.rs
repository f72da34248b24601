//! Placement: which relay a participant of a meeting is sent to. Pure, so it is tested
//! without a database.

use crate::store::{MeetingHost, MeetingRecord, RelayRecord};

/// Picks the relay for a new participant of `meeting`.
///
/// `fresh` holds only relays with a recent heartbeat; `hosts` the fresh relays that have
/// participants of the meeting now or on their way (most first). A live meeting fills the
/// relay with most of it first, up to that relay's capacity or, when `share_per_relay` is
/// set, up to that many of the meeting's participants; then it spills to the next
/// least-loaded relay, which joins the meeting over the mesh. When every other relay is
/// full or draining, a host takes more than its share while it has room. A meeting nobody
/// has joined yet stays on the relay it was last placed on while that relay is fresh, so
/// people joining together meet on one relay. Draining relays take nobody new.
pub fn choose_relay(
    meeting: &MeetingRecord,
    fresh: &[RelayRecord],
    hosts: &[MeetingHost],
    share_per_relay: Option<u32>,
) -> Option<String> {
    let open = |r: &&RelayRecord| !r.is_draining() && r.participants < r.capacity.max(1);
    let usable = |id: &str| fresh.iter().find(|r| r.relay_id == id).filter(open);
    for host in hosts.iter().filter(|h| under_share(h, share_per_relay)) {
        if let Some(relay) = usable(&host.relay_id) {
            return Some(relay.relay_id.clone());
        }
    }
    if hosts.is_empty() {
        if let Some(relay) = meeting.relay_id.as_deref().and_then(usable) {
            return Some(relay.relay_id.clone());
        }
    }
    let hosting = |id: &str| hosts.iter().any(|h| h.relay_id == id);
    let spill = fresh
        .iter()
        .filter(open)
        .filter(|r| !hosting(&r.relay_id))
        .min_by(|a, b| {
            load(a)
                .total_cmp(&load(b))
                .then(a.meetings.cmp(&b.meetings))
                .then(a.relay_id.cmp(&b.relay_id))
        });
    if let Some(relay) = spill {
        return Some(relay.relay_id.clone());
    }
    // Nowhere to spill: a host over its share, while it has room.
    hosts
        .iter()
        .find_map(|h| usable(&h.relay_id))
        .map(|r| r.relay_id.clone())
}

/// How a relay was chosen, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A relay that hosts the meeting, within its share.
    HostingRelay,
    /// A relay that hosts the meeting, past its share: nowhere else had room.
    OverShare,
    /// The relay the meeting was last placed on (nobody is in it yet).
    PreviousRelay,
    /// The least-loaded relay that does not host the meeting yet.
    LeastLoaded,
    /// No relay could take the participant.
    None,
}

impl Decision {
    /// Every decision, for series that exist from the start.
    pub const ALL: [Decision; 5] = [
        Decision::HostingRelay,
        Decision::OverShare,
        Decision::PreviousRelay,
        Decision::LeastLoaded,
        Decision::None,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Decision::HostingRelay => "hosting_relay",
            Decision::OverShare => "over_share",
            Decision::PreviousRelay => "previous_relay",
            Decision::LeastLoaded => "least_loaded",
            Decision::None => "none",
        }
    }

    /// How `chosen` came out of [`choose_relay`] for `meeting` and its `hosts`.
    pub fn of(
        meeting: &MeetingRecord,
        hosts: &[MeetingHost],
        share_per_relay: Option<u32>,
        chosen: Option<&str>,
    ) -> Decision {
        let Some(chosen) = chosen else {
            return Decision::None;
        };
        match hosts.iter().find(|h| h.relay_id == chosen) {
            Some(host) if under_share(host, share_per_relay) => Decision::HostingRelay,
            Some(_) => Decision::OverShare,
            None if hosts.is_empty() && meeting.relay_id.as_deref() == Some(chosen) => {
                Decision::PreviousRelay
            }
            None => Decision::LeastLoaded,
        }
    }
}

/// [`choose_relay`] for a participant who just lost or could not reach the relays in
/// `avoid` (a killed relay stays fresh until its heartbeat goes stale): those relays are
/// left out while any other can take the participant, and chosen again only when none can.
pub fn choose_relay_avoiding(
    meeting: &MeetingRecord,
    fresh: &[RelayRecord],
    hosts: &[MeetingHost],
    share_per_relay: Option<u32>,
    avoid: &[String],
) -> Option<String> {
    if avoid.is_empty() {
        return choose_relay(meeting, fresh, hosts, share_per_relay);
    }
    let avoided = |id: &str| avoid.iter().any(|a| a == id);
    let others: Vec<RelayRecord> = fresh
        .iter()
        .filter(|r| !avoided(&r.relay_id))
        .cloned()
        .collect();
    let other_hosts: Vec<MeetingHost> = hosts
        .iter()
        .filter(|h| !avoided(&h.relay_id))
        .cloned()
        .collect();
    // The meeting's last relay is where a meeting nobody is in starts again: not there.
    let mut elsewhere = meeting.clone();
    if elsewhere.relay_id.as_deref().is_some_and(avoided) {
        elsewhere.relay_id = None;
    }
    choose_relay(&elsewhere, &others, &other_hosts, share_per_relay)
        .or_else(|| choose_relay(meeting, fresh, hosts, share_per_relay))
}

/// Whether `host` has fewer of the meeting's participants than its share (no share: always).
fn under_share(host: &MeetingHost, share_per_relay: Option<u32>) -> bool {
    share_per_relay.is_none_or(|s| host.participants < s.max(1))
}

fn load(relay: &RelayRecord) -> f64 {
    f64::from(relay.participants) / f64::from(relay.capacity.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Access;

    fn relay(id: &str, participants: u32, capacity: u32, draining: bool) -> RelayRecord {
        RelayRecord {
            relay_id: id.into(),
            webtransport_url: String::new(),
            websocket_url: String::new(),
            certificate_sha256: Vec::new(),
            admin_url: String::new(),
            capacity,
            participants,
            meetings: 0,
            bitrate_bps: 0,
            draining,
            drain_requested: false,
            last_heartbeat_ms: 0,
        }
    }

    fn host(id: &str, participants: u32) -> MeetingHost {
        MeetingHost {
            relay_id: id.into(),
            participants,
        }
    }

    #[test]
    fn each_decision_is_named_by_how_it_was_made() {
        let fresh = [relay("a", 3, 100, false), relay("b", 0, 100, false)];
        let decide = |m: &MeetingRecord, hosts: &[MeetingHost], share| {
            let chosen = choose_relay(m, &fresh, hosts, share);
            Decision::of(m, hosts, share, chosen.as_deref())
        };
        assert_eq!(
            decide(&meeting(None), &[host("a", 3)], None),
            Decision::HostingRelay
        );
        assert_eq!(
            decide(&meeting(Some("a")), &[], None),
            Decision::PreviousRelay
        );
        assert_eq!(decide(&meeting(None), &[], None), Decision::LeastLoaded);
        assert_eq!(
            decide(&meeting(None), &[host("a", 3)], Some(3)),
            Decision::LeastLoaded
        );
        let full = [relay("a", 3, 100, false)];
        let hosts = [host("a", 3)];
        let chosen = choose_relay(&meeting(None), &full, &hosts, Some(3));
        assert_eq!(
            Decision::of(&meeting(None), &hosts, Some(3), chosen.as_deref()),
            Decision::OverShare
        );
        assert_eq!(
            Decision::of(&meeting(None), &[], None, None),
            Decision::None
        );
    }

    #[test]
    fn a_relay_the_participant_lost_is_avoided_while_another_can_take_them() {
        let fresh = [relay("a", 1, 100, false), relay("b", 1, 100, false)];
        let hosts = [host("a", 1), host("b", 1)];
        let avoid = ["b".to_owned()];
        // Without the hint the meeting would fill b (it sorts after a, but a is over share).
        assert_eq!(
            choose_relay(&meeting(Some("b")), &fresh, &[host("b", 1)], Some(2)).as_deref(),
            Some("b")
        );
        assert_eq!(
            choose_relay_avoiding(
                &meeting(Some("b")),
                &fresh,
                &[host("b", 1)],
                Some(2),
                &avoid
            )
            .as_deref(),
            Some("a")
        );
        // Over its share, a still takes them rather than the lost relay.
        assert_eq!(
            choose_relay_avoiding(&meeting(Some("a")), &fresh, &hosts, Some(1), &avoid).as_deref(),
            Some("a")
        );
        // A meeting nobody is in does not go back to the relay it was lost on.
        assert_eq!(
            choose_relay_avoiding(&meeting(Some("b")), &fresh, &[], None, &avoid).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn the_lost_relay_is_chosen_again_when_no_other_can_take_the_participant() {
        let fresh = [relay("a", 100, 100, false), relay("b", 1, 100, false)];
        let avoid = ["b".to_owned()];
        assert_eq!(
            choose_relay_avoiding(&meeting(None), &fresh, &[], None, &avoid).as_deref(),
            Some("b")
        );
        let fresh = [relay("b", 1, 100, false)];
        assert_eq!(
            choose_relay_avoiding(&meeting(Some("b")), &fresh, &[host("b", 1)], None, &avoid)
                .as_deref(),
            Some("b")
        );
    }

    fn meeting(relay_id: Option<&str>) -> MeetingRecord {
        MeetingRecord {
            id: "m".into(),
            title: String::new(),
            owner: "o".into(),
            access: Access::Public,
            password_hash: None,
            guests_allowed: false,
            max_participants: 10,
            e2ee_required: false,
            relay_id: relay_id.map(str::to_owned),
            created_at_ms: 0,
            ended_at_ms: None,
            allowed_users: Vec::new(),
            hosts: Vec::new(),
            waiting_room: Default::default(),
            locked: false,
        }
    }

    #[test]
    fn new_meeting_goes_to_least_loaded_relay() {
        let fresh = [relay("a", 50, 100, false), relay("b", 10, 100, false)];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &[], None).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn load_is_relative_to_capacity() {
        let fresh = [relay("a", 50, 1000, false), relay("b", 10, 20, false)];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &[], None).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn live_meeting_stays_on_its_host() {
        let fresh = [relay("a", 90, 100, false), relay("b", 0, 100, false)];
        let hosts = [host("a", 90)];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &hosts, None).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn placed_meeting_stays_while_its_relay_is_fresh() {
        let fresh = [relay("a", 90, 100, false), relay("b", 0, 100, false)];
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[], None).as_deref(),
            Some("a")
        );
        // Its relay went stale: placed afresh.
        let fresh = [relay("b", 0, 100, false)];
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[], None).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn draining_and_full_relays_take_nobody() {
        let fresh = [relay("a", 0, 100, true), relay("b", 100, 100, false)];
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[host("a", 1)], None),
            None
        );
        let fresh = [relay("a", 0, 100, true), relay("c", 5, 100, false)];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &[host("a", 1)], None).as_deref(),
            Some("c")
        );
    }

    #[test]
    fn a_meeting_fills_its_share_of_a_relay_then_spills_to_the_least_loaded() {
        let fresh = [
            relay("a", 3, 100, false),
            relay("b", 40, 100, false),
            relay("c", 10, 100, false),
        ];
        // Under its share, the host takes the next participant.
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[host("a", 2)], Some(3)).as_deref(),
            Some("a")
        );
        // At its share: the least-loaded other relay.
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[host("a", 3)], Some(3)).as_deref(),
            Some("c")
        );
        // Both hosts at their share: a third relay, not the fuller host.
        assert_eq!(
            choose_relay(
                &meeting(Some("a")),
                &fresh,
                &[host("a", 3), host("c", 3)],
                Some(3)
            )
            .as_deref(),
            Some("b")
        );
        // With no share set, the host takes everyone it has room for.
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[host("a", 3)], None).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn a_host_over_its_share_takes_more_when_no_other_relay_can() {
        let fresh = [
            relay("a", 3, 100, false),
            relay("b", 0, 100, true),
            relay("c", 100, 100, false),
        ];
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[host("a", 3)], Some(3)).as_deref(),
            Some("a")
        );
        // A draining host takes nobody: its meeting continues on the relay with room.
        assert_eq!(
            choose_relay(&meeting(Some("b")), &fresh, &[host("b", 1)], Some(3)).as_deref(),
            Some("a")
        );
    }
}
