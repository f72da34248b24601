//! Participant-based autoscaling, as pure functions: how many relays a pool needs, and
//! the one safe step towards it. Scale-down only ever removes the highest-ordinal relay, and
//! only after it drained empty (or its drain timeout passed): a relay with a live meeting is
//! never cut.

use std::time::Duration;

use crate::crd::RelayPoolSpec;

/// What the operator knows of one relay of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayObservation {
    /// StatefulSet ordinal.
    pub ordinal: i32,
    /// Participants now.
    pub participants: i32,
    /// Meetings now.
    pub meetings: i32,
    /// Draining (asked by the operator or anyone).
    pub draining: bool,
}

/// Relays needed for `participants`: `ceil((participants + buffer) / target)` within the
/// pool's bounds, where the buffer is the larger of the absolute and the percentage one.
pub fn desired_replicas(spec: &RelayPoolSpec, participants: i32) -> i32 {
    let nonnegative = |v: i32| u64::try_from(v).unwrap_or(0);
    let participants = nonnegative(participants);
    let percent = (participants * nonnegative(spec.buffer_percent)).div_ceil(100);
    let buffer = nonnegative(spec.buffer_participants).max(percent);
    let target = nonnegative(spec.target_participants_per_relay).max(1);
    let needed = (participants + buffer).div_ceil(target);
    let min = spec.min_replicas.max(0);
    let max = spec.max_replicas.max(min).max(1);
    i32::try_from(needed).unwrap_or(i32::MAX).clamp(min, max)
}

/// The next step towards the desired size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleStep {
    /// Nothing to do now.
    Hold,
    /// Set the StatefulSet's replicas to this (up at once).
    ScaleUp(i32),
    /// Ask the control plane to drain this relay (the highest ordinal).
    Drain(i32),
    /// The drained relay is empty (or timed out): lower replicas to this.
    Remove(i32),
}

/// Inputs of [`next_step`] besides the spec.
#[derive(Debug, Clone)]
pub struct ScaleInput<'a> {
    /// StatefulSet replicas now.
    pub replicas: i32,
    /// Relays the pool needs.
    pub desired: i32,
    /// Every relay of the pool.
    pub relays: &'a [RelayObservation],
    /// How long `desired` has stayed below `replicas`.
    pub low_for: Duration,
    /// How long the highest relay has been draining, if it is.
    pub draining_for: Option<Duration>,
}

/// One safe step: grow at once; shrink one relay at a time, by draining the highest
/// ordinal after load stayed low for the scale-down delay, and removing it only when it
/// hosts no meeting or its drain timeout passed.
pub fn next_step(spec: &RelayPoolSpec, input: &ScaleInput<'_>) -> ScaleStep {
    if input.desired > input.replicas {
        return ScaleStep::ScaleUp(input.desired);
    }
    let highest = input.replicas - 1;
    let delay = Duration::from_secs(u64::try_from(spec.scale_down_delay_seconds).unwrap_or(0));
    let low_long_enough = input.desired < input.replicas && input.low_for >= delay;
    let Some(top) = input.relays.iter().find(|r| r.ordinal == highest) else {
        // The highest relay never registered (its pod is Pending, cannot pull its image, or
        // crashes before it starts): it hosts nobody, so nothing needs draining.
        return if low_long_enough && highest >= 0 {
            ScaleStep::Remove(highest)
        } else {
            ScaleStep::Hold
        };
    };
    if top.draining {
        let timed_out = input
            .draining_for
            .is_some_and(|d| d.as_secs() >= u64::try_from(spec.drain_timeout_seconds).unwrap_or(0));
        if top.meetings == 0 || timed_out {
            return ScaleStep::Remove(highest);
        }
        return ScaleStep::Hold;
    }
    if low_long_enough {
        return ScaleStep::Drain(highest);
    }
    ScaleStep::Hold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ControlPlaneRef, RelayPorts};

    fn spec() -> RelayPoolSpec {
        RelayPoolSpec {
            image: "videocall-relay:dev".into(),
            min_replicas: 1,
            max_replicas: 10,
            target_participants_per_relay: 100,
            buffer_participants: 0,
            buffer_percent: 0,
            scale_down_delay_seconds: 60,
            drain_timeout_seconds: 300,
            resources: None,
            ports: RelayPorts::default(),
            public_host: None,
            gateway: None,
            nats: None,
            control_plane: ControlPlaneRef {
                url: "http://control-plane:50051".into(),
                api_key_secret: "relay-key".into(),
            },
        }
    }

    fn relay(ordinal: i32, meetings: i32, draining: bool) -> RelayObservation {
        RelayObservation {
            ordinal,
            participants: meetings * 10,
            meetings,
            draining,
        }
    }

    #[test]
    fn desired_follows_participants_with_buffer_and_bounds() {
        let mut s = spec();
        assert_eq!(desired_replicas(&s, 0), 1, "min");
        assert_eq!(desired_replicas(&s, 100), 1);
        assert_eq!(desired_replicas(&s, 101), 2);
        s.buffer_participants = 50;
        assert_eq!(desired_replicas(&s, 60), 2, "60 + 50 > 100");
        s.buffer_participants = 0;
        s.buffer_percent = 50;
        assert_eq!(desired_replicas(&s, 150), 3, "150 + 75 = 225");
        assert_eq!(desired_replicas(&s, 100_000), 10, "max");
        s.min_replicas = 0;
        assert_eq!(desired_replicas(&s, 0), 0, "an idle pool may be empty");
    }

    #[test]
    fn grows_at_once() {
        let relays = [relay(0, 3, false)];
        let input = ScaleInput {
            replicas: 1,
            desired: 3,
            relays: &relays,
            low_for: Duration::ZERO,
            draining_for: None,
        };
        assert_eq!(next_step(&spec(), &input), ScaleStep::ScaleUp(3));
    }

    #[test]
    fn shrinks_by_draining_the_highest_after_the_delay() {
        let relays = [relay(0, 2, false), relay(1, 1, false)];
        let mut input = ScaleInput {
            replicas: 2,
            desired: 1,
            relays: &relays,
            low_for: Duration::from_secs(10),
            draining_for: None,
        };
        assert_eq!(
            next_step(&spec(), &input),
            ScaleStep::Hold,
            "not low for long enough"
        );
        input.low_for = Duration::from_secs(60);
        assert_eq!(next_step(&spec(), &input), ScaleStep::Drain(1));
    }

    #[test]
    fn never_removes_a_relay_with_a_live_meeting_before_its_drain_timeout() {
        let relays = [relay(0, 2, false), relay(1, 1, true)];
        let mut input = ScaleInput {
            replicas: 2,
            desired: 1,
            relays: &relays,
            low_for: Duration::from_secs(600),
            draining_for: Some(Duration::from_secs(30)),
        };
        assert_eq!(next_step(&spec(), &input), ScaleStep::Hold);
        input.draining_for = Some(Duration::from_secs(300));
        assert_eq!(
            next_step(&spec(), &input),
            ScaleStep::Remove(1),
            "timed out"
        );
        let empty = [relay(0, 2, false), relay(1, 0, true)];
        input.relays = &empty;
        input.draining_for = Some(Duration::from_secs(1));
        assert_eq!(
            next_step(&spec(), &input),
            ScaleStep::Remove(1),
            "drained empty"
        );
    }

    #[test]
    fn a_relay_that_never_registered_is_removed_without_a_drain() {
        let relays = [relay(0, 2, false)];
        let mut input = ScaleInput {
            replicas: 2,
            desired: 1,
            relays: &relays,
            low_for: Duration::from_secs(10),
            draining_for: None,
        };
        assert_eq!(
            next_step(&spec(), &input),
            ScaleStep::Hold,
            "load not low for long enough"
        );
        input.low_for = Duration::from_secs(60);
        assert_eq!(next_step(&spec(), &input), ScaleStep::Remove(1));
        input.desired = 2;
        assert_eq!(
            next_step(&spec(), &input),
            ScaleStep::Hold,
            "still wanted: it may be starting"
        );
    }
}
