//! Placement: which relay a participant of a meeting is sent to. Pure, so it is tested
//! without a database.

use crate::store::{MeetingRecord, RelayRecord};

/// Picks the relay for a new participant of `meeting`.
///
/// `fresh` holds only relays with a recent heartbeat; `hosts` the fresh relays that have
/// participants of the meeting now. A live meeting stays where it is hosted (the relay with
/// most of it first); a meeting nobody has joined yet stays on the relay it was last placed
/// on while that relay is fresh, so people joining together meet on one relay. Otherwise the
/// least-loaded relay that is not draining takes it. Draining relays take nobody new.
pub fn choose_relay(
    meeting: &MeetingRecord,
    fresh: &[RelayRecord],
    hosts: &[String],
) -> Option<String> {
    let usable = |id: &str| {
        fresh
            .iter()
            .find(|r| r.relay_id == id)
            .filter(|r| !r.is_draining() && r.participants < r.capacity.max(1))
    };
    for host in hosts {
        if let Some(relay) = usable(host) {
            return Some(relay.relay_id.clone());
        }
    }
    if hosts.is_empty() {
        if let Some(relay) = meeting.relay_id.as_deref().and_then(usable) {
            return Some(relay.relay_id.clone());
        }
    }
    fresh
        .iter()
        .filter(|r| !r.is_draining() && r.participants < r.capacity.max(1))
        .min_by(|a, b| {
            load(a)
                .total_cmp(&load(b))
                .then(a.meetings.cmp(&b.meetings))
                .then(a.relay_id.cmp(&b.relay_id))
        })
        .map(|r| r.relay_id.clone())
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
        }
    }

    #[test]
    fn new_meeting_goes_to_least_loaded_relay() {
        let fresh = [relay("a", 50, 100, false), relay("b", 10, 100, false)];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &[]).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn load_is_relative_to_capacity() {
        let fresh = [relay("a", 50, 1000, false), relay("b", 10, 20, false)];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &[]).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn live_meeting_stays_on_its_host() {
        let fresh = [relay("a", 90, 100, false), relay("b", 0, 100, false)];
        let hosts = ["a".to_owned()];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &hosts).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn placed_meeting_stays_while_its_relay_is_fresh() {
        let fresh = [relay("a", 90, 100, false), relay("b", 0, 100, false)];
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[]).as_deref(),
            Some("a")
        );
        // Its relay went stale: placed afresh.
        let fresh = [relay("b", 0, 100, false)];
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &[]).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn draining_and_full_relays_take_nobody() {
        let fresh = [relay("a", 0, 100, true), relay("b", 100, 100, false)];
        assert_eq!(
            choose_relay(&meeting(Some("a")), &fresh, &["a".into()]),
            None
        );
        let fresh = [relay("a", 0, 100, true), relay("c", 5, 100, false)];
        assert_eq!(
            choose_relay(&meeting(None), &fresh, &["a".into()]).as_deref(),
            Some("c")
        );
    }
}
