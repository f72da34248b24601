//! The relay as the core sees it: its meetings, the trusted keys, the admission policy
//! (draining, ended meetings, join budgets: shared, per identity, per client address) and
//! participant ids. No I/O, no tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::clock::Now;
use super::join_budget::{ClientBudgets, JoinBudget};
use super::meeting::Meetings;
use super::mesh::Mesh;
use super::moderation::Rules;
use super::sync::lock;
use crate::client_address::ClientKey;
use crate::config::RelayConfig;
use crate::ids::ParticipantId;
use crate::metrics::Metrics;
use crate::reason::{CloseReason, Refusal};
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::mesh::{mesh_event, Ended, MeetingRules};
use videocall_protocol::wire::{envelope::Body, Draining, ErrorCode, LeaveReason};
use videocall_token::{Role, TokenVerifier};

/// One relay's meetings and policies.
pub struct Relay {
    /// Configuration the relay started with.
    pub config: RelayConfig,
    /// Trusted token keys; replaced whole when the control plane rotates keys.
    pub verifier: ArcSwap<TokenVerifier>,
    /// Live meetings.
    pub meetings: Meetings,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The way to the other relays (a relay on its own has `NoMesh`).
    pub mesh: Arc<dyn Mesh>,
    /// Host actions taken here, until the control plane has them.
    pub host_actions: super::audit::HostActionLog,
    draining: AtomicBool,
    /// Meeting id -> when it ended (Unix seconds), from the control plane.
    ended: Mutex<HashMap<String, u64>>,
    /// Meeting id -> when it ended, from another relay or a host, until the control plane
    /// lists it.
    ended_by_mesh: Mutex<HashMap<String, u64>>,
    /// Meeting id -> who may join it, as its hosts decided (a lock, bans).
    rules: Mutex<HashMap<String, Rules>>,
    join_budget: Mutex<JoinBudget>,
    /// Joins per identity (token subject).
    identity_budgets: Mutex<ClientBudgets<String>>,
    /// Refused joins per client address.
    address_budgets: Mutex<ClientBudgets<ClientKey>>,
    next_id: AtomicU64,
    /// The relay's QUIC server id in the top 16 bits of every participant id.
    id_prefix: u64,
    epoch: Instant,
}

/// Bits of a participant id below the relay's server id.
const ID_COUNTER_BITS: u32 = 48;
const ID_COUNTER_MASK: u64 = (1 << ID_COUNTER_BITS) - 1;

impl Relay {
    /// A relay for `config` with `verifier`'s keys, starting at `now`.
    pub fn new(
        config: RelayConfig,
        verifier: TokenVerifier,
        metrics: Metrics,
        mesh: Arc<dyn Mesh>,
        now: Now,
    ) -> Self {
        // Ids carry the relay's server id (unique in its pool), so they are unique across the
        // pool; below it a counter that starts at the wall clock's microseconds, so ids of a
        // restarted relay do not repeat.
        let seed = now.unix_us.max(1) & ID_COUNTER_MASK;
        Relay {
            meetings: Meetings::new(metrics.clone(), mesh.clone()),
            metrics,
            mesh,
            verifier: ArcSwap::from_pointee(verifier),
            ended: Mutex::new(HashMap::new()),
            ended_by_mesh: Mutex::new(HashMap::new()),
            rules: Mutex::new(HashMap::new()),
            host_actions: Default::default(),
            draining: AtomicBool::new(false),
            join_budget: Mutex::new(JoinBudget::new(
                config.limits.join_rate_per_sec,
                config.limits.join_burst,
            )),
            identity_budgets: Mutex::new(ClientBudgets::new(
                config.limits.identity_join_rate_per_sec,
                config.limits.identity_join_burst,
                config.limits.max_metered_clients,
            )),
            address_budgets: Mutex::new(ClientBudgets::new(
                config.limits.address_refusal_rate_per_sec,
                config.limits.address_refusal_burst,
                config.limits.max_metered_clients,
            )),
            next_id: AtomicU64::new(seed),
            id_prefix: u64::from(config.server_id()) << ID_COUNTER_BITS,
            epoch: now.at,
            config,
        }
    }

    /// `now` in milliseconds on the relay's monotonic clock.
    pub fn ms(&self, now: Now) -> u64 {
        now.at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// A fresh participant id, unique across the relays of a pool.
    pub fn next_participant_id(&self) -> ParticipantId {
        self.id_prefix | (self.next_id.fetch_add(1, Ordering::Relaxed) & ID_COUNTER_MASK)
    }

    /// Takes one join from the rate budget.
    pub fn take_join_permit(&self, now: Now) -> bool {
        let ms = self.ms(now);
        lock(&self.join_budget).take(ms)
    }

    /// Takes one join from `identity`'s own budget (before the shared one).
    pub fn take_identity_permit(&self, identity: &str, now: Now) -> bool {
        let ms = self.ms(now);
        let mut budgets = lock(&self.identity_budgets);
        budgets.take(&identity.to_owned(), ms)
    }

    /// Whether a connection from `client` may try to join: false once the refusals its
    /// address caused have spent its budget (it is refused before anything is read).
    pub fn address_may_try(&self, client: ClientKey, now: Now) -> bool {
        let ms = self.ms(now);
        lock(&self.address_budgets).has_one(&client, ms)
    }

    /// Charges a refused join to `client`'s address.
    pub fn charge_refusal(&self, client: ClientKey, now: Now) {
        let ms = self.ms(now);
        lock(&self.address_budgets).take(&client, ms);
    }

    /// Whether `meeting` ended at or after a token issued at `issued_at` (Unix seconds).
    pub fn ended_before(&self, meeting: &str, issued_at: u64) -> bool {
        let ended_at = |map: &Mutex<HashMap<String, u64>>| lock(map).get(meeting).copied();
        ended_at(&self.ended)
            .or_else(|| ended_at(&self.ended_by_mesh))
            .is_some_and(|at| issued_at <= at)
    }

    /// Whether `user` with `role` may join `meeting` by its hosts' rules (a lock, bans).
    pub fn rules_admit(&self, meeting: &str, user: &str, role: Role) -> Result<(), Refusal> {
        match lock(&self.rules).get(meeting) {
            Some(rules) => rules.admits(user, role),
            None => Ok(()),
        }
    }

    /// Whether a host locked `meeting`.
    pub fn is_locked(&self, meeting: &str) -> bool {
        lock(&self.rules).get(meeting).is_some_and(Rules::locked)
    }

    /// Changes `meeting`'s rules.
    pub fn change_rules<T>(&self, meeting: &str, change: impl FnOnce(&mut Rules) -> T) -> T {
        let mut all = lock(&self.rules);
        let rules = all.entry(meeting.to_owned()).or_default();
        let result = change(rules);
        if rules.is_default() {
            all.remove(meeting);
        }
        result
    }

    /// `meeting`'s rules as the other relays get them.
    pub fn rules_of(&self, meeting: &str) -> MeetingRules {
        lock(&self.rules)
            .get(meeting)
            .map(Rules::to_wire)
            .unwrap_or_default()
    }

    /// Records the meetings the control plane says have ended (replacing the last list)
    /// and disconnects everyone still in them; the other relays of such a meeting are told
    /// at once. Returns how many were disconnected.
    pub fn end_meetings(&self, ended: HashMap<String, u64>) -> usize {
        // Recorded before anyone is disconnected: a participant who sees its session end and
        // joins again at once with its old grant must find the meeting ended.
        // Meetings another relay said have ended stay ended until the control plane lists them.
        lock(&self.ended_by_mesh).retain(|id, _| !ended.contains_key(id));
        *lock(&self.ended) = ended.clone();
        let mut closed = 0;
        for (id, &ended_at) in &ended {
            let here = self.end_here(id);
            if here > 0 {
                self.mesh
                    .publish(id, mesh_event::Body::Ended(Ended { ended_at }));
            }
            closed += here;
        }
        closed
    }

    /// Another relay of `meeting`, or a host, says it ended at `ended_at` (Unix seconds):
    /// disconnects this relay's participants of it and refuses tokens issued before, until
    /// the control plane lists it. Returns how many were disconnected.
    pub fn end_meeting_from_elsewhere(&self, meeting: &str, ended_at: u64) -> usize {
        lock(&self.ended_by_mesh).insert(meeting.to_owned(), ended_at);
        self.end_here(meeting)
    }

    fn end_here(&self, meeting: &str) -> usize {
        let Some(meeting) = self.meetings.get(meeting) else {
            return 0;
        };
        let locals = meeting.local_participants();
        for participant in &locals {
            participant.close(CloseReason::error(
                LeaveReason::MeetingEnded,
                ErrorCode::MeetingEnded,
                "the meeting has ended",
            ));
        }
        locals.len()
    }

    /// Whether the relay refuses new joins.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stops admitting and tells every participant to move. Returns false if already draining.
    pub fn start_drain(&self) -> bool {
        if self.draining.swap(true, Ordering::AcqRel) {
            return false;
        }
        let deadline_ms =
            (self.config.timing.drain_timeout_secs * 1000).min(u32::MAX as u64) as u32;
        let frame = encode_length_prefixed(&envelope(Body::Draining(Draining {
            deadline_ms,
            redirect_url: String::new(),
        })));
        for meeting in self.meetings.all() {
            meeting.broadcast(0, &frame);
        }
        tracing::info!(
            meetings = self.meetings.count(),
            "drain started: refusing new joins"
        );
        true
    }

    /// Dynacast: layers of this relay's publishers' simulcast tracks that nobody gets now.
    pub fn paused_layers(&self) -> usize {
        self.meetings
            .all()
            .iter()
            .flat_map(|meeting| meeting.local_participants())
            .flat_map(|publisher| publisher.tracks())
            .map(|track| track.paused_layers())
            .sum()
    }

    /// Closes every session with `reason` (a drain's deadline, a shutdown).
    pub fn close_everyone(&self, reason: &CloseReason) {
        for meeting in self.meetings.all() {
            for participant in meeting.local_participants() {
                participant.close(reason.clone());
            }
        }
    }
}
