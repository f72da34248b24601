//! The relays a client asks placement to avoid after losing them (`JoinMeetingRequest
//! .avoid_relay_ids`): the browser, the native client and the control plane share the list's
//! rules, so they cannot disagree on its size.

/// Most relays one join may ask to avoid; the control plane refuses more.
pub const MAX_AVOIDED_RELAYS: usize = 8;

/// Relays lost since the last successful join, oldest first, at most [`MAX_AVOIDED_RELAYS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AvoidList(Vec<String>);

impl AvoidList {
    /// Remembers `relay_id` as lost (once; the oldest goes when the list is full).
    pub fn lost(&mut self, relay_id: &str) {
        if relay_id.is_empty() || self.0.iter().any(|r| r == relay_id) {
            return;
        }
        if self.0.len() == MAX_AVOIDED_RELAYS {
            self.0.remove(0);
        }
        self.0.push(relay_id.to_owned());
    }

    /// Forgets them all (a join succeeded).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The relays, for the grant request.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_avoid_list_keeps_the_latest_eight_once_each() {
        let mut avoid = AvoidList::default();
        avoid.lost("a");
        avoid.lost("a");
        avoid.lost("");
        assert_eq!(avoid.as_slice(), ["a"]);
        for n in 0..9 {
            avoid.lost(&format!("r{n}"));
        }
        assert_eq!(avoid.as_slice().len(), MAX_AVOIDED_RELAYS);
        assert_eq!(avoid.as_slice()[0], "r1");
        avoid.clear();
        assert!(avoid.as_slice().is_empty());
    }
}
