//! A participant's end-to-end encryption in a meeting, driven by what the relay says and the
//! time: which handshake messages to send, what the ones delivered do, and who commits. No I/O;
//! both clients (native and browser) run it.
//!
//! - **Joining**: a participant offers a key package (again every [`OFFER_INTERVAL_MS`] until
//!   welcomed). Alone in the meeting it founds the group; so does one that nobody has added for
//!   [`FOUND_AFTER_MS`] (the group's members are gone or broken): every member of the old group
//!   then offers a key package to the new founder.
//! - **Committing**: the member with the lowest leaf index among those in the meeting commits:
//!   it removes members who left, removes a member that offers a key package again (it lost its
//!   state: a reload, a missed Welcome) and adds whoever offers one. Two committers at once are
//!   harmless: the relay takes the first commit that follows the last one and refuses the
//!   other, whose member applies the winner and decides again.
//! - **Order**: every commit and founding names the one it follows (`after`); a member that
//!   sees one that does not follow its last has missed something and joins again. A commit
//!   that wins the order and does not apply (garbage, a forgery) is skipped by every member
//!   alike, so the group goes on.
//! - **Checks**: a key package is taken only from the participant the relay says it comes
//!   from, under that participant's own identity, with a credential the control plane signed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use videocall_protocol::wire::{Handshake, HandshakeKind, HandshakeRefused};

use crate::member::{Handled, Member};
use crate::{E2eeError, Identity};

/// How often a participant that is not in the group offers its key package again.
pub const OFFER_INTERVAL_MS: u64 = 3_000;
/// How long a participant waits to be added before it founds the group afresh.
pub const FOUND_AFTER_MS: u64 = 10_000;

/// Where the participant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not in the group: offering key packages, waiting for a Welcome.
    Waiting,
    /// In the group: media can be sealed and opened.
    InGroup,
}

/// What happened, for the user interface and the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// The participant is in the group at `epoch` (founded, welcomed, or a commit applied).
    Epoch {
        /// The epoch.
        epoch: u64,
        /// Every member, by leaf index.
        members: Vec<GroupMember>,
    },
    /// The participant is out of the group (removed, or it was founded afresh) and is
    /// offering its key package again.
    Left {
        /// Why.
        reason: String,
    },
    /// Something another participant sent was refused (a credential that does not check, a
    /// key package under someone else's name, a commit that does not apply).
    Refused {
        /// The participant it came from (0: unknown).
        from: u64,
        /// Why.
        reason: String,
    },
}

/// A member of the group as a participant's screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its leaf index.
    pub leaf: u32,
    /// Who its credential says it is (user, name, guest or not).
    pub identity: Identity,
    /// Its verification code, for people to compare out of band (the same on every member's
    /// screen for the same key).
    pub code: String,
    /// It is this participant.
    pub me: bool,
}

impl GroupMember {
    /// The name to show: the one its credential carries (signed by the control plane), else
    /// its user.
    pub fn shown_name(&self) -> &str {
        if self.identity.name.is_empty() {
            &self.identity.user
        } else {
            &self.identity.name
        }
    }
}

/// A key package offered by a participant who is not (or no longer) in the group.
#[derive(Debug, Clone)]
struct Offer {
    sequence: u64,
    /// The last commit or founding its sender had seen.
    after: u64,
    participant: u64,
    key_package: Vec<u8>,
}

/// Counters of refused input, for tests and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounters {
    /// Commits refused (did not apply) but skipped by everyone.
    pub commits_refused: u64,
    /// Key packages refused (credential, signature, wrong sender).
    pub key_packages_refused: u64,
    /// Welcomes that were for this participant but did not check.
    pub welcomes_refused: u64,
    /// Handshakes that did not follow this member's last one: it joined again.
    pub resyncs: u64,
    /// Commits of this member's that another one beat.
    pub commits_lost: u64,
}

/// One participant's end-to-end encryption in one meeting.
pub struct GroupSession {
    meeting: String,
    member: Member,
    me: u64,
    phase: Phase,
    /// The sequence of the last commit or founding taken into account (0: none): delivered
    /// to this participant, or the head its `Joined` named. Offers say it as `after`.
    head: u64,
    /// The head a refusal of this participant's founding named: the order is further on than
    /// anything delivered yet (the commit that adds this participant may be on its way). A
    /// founding follows it; offers and the order of what is delivered do not.
    refused_head: u64,
    /// Participant id -> user, as the relay's roster says (this participant excluded).
    roster: HashMap<u64, String>,
    /// User -> its newest key package not yet added.
    offers: BTreeMap<String, Offer>,
    /// User -> the sequence of the commit (or Welcome, or founding) that made it a member.
    added_at: HashMap<String, u64>,
    /// User -> the participant whose key package made it a member, where this member saw it.
    participant_of: HashMap<String, u64>,
    waiting_since_ms: u64,
    last_offer_ms: Option<u64>,
    /// The `after` of a founding this participant sent and has not heard the fate of.
    founding: Option<u64>,
    /// When this participant last tried to found the group.
    last_found_ms: Option<u64>,
    /// The `after` of this member's commit that the relay has not answered yet (it always
    /// does: taken, delivered to everyone, or refused).
    committing: Option<u64>,
    events: VecDeque<GroupEvent>,
    counters: SessionCounters,
}

impl std::fmt::Debug for GroupSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSession")
            .field("meeting", &self.meeting)
            .field("me", &self.me)
            .field("phase", &self.phase)
            .field("head", &self.head)
            .field("epoch", &self.member.epoch())
            .finish()
    }
}

fn handshake(kind: HandshakeKind, after: u64, message: Vec<u8>, welcome: Vec<u8>) -> Handshake {
    Handshake {
        kind: kind as i32,
        after,
        message: message.into(),
        welcome: welcome.into(),
        ..Default::default()
    }
}

impl GroupSession {
    /// The session of `member` in `meeting`, before joining the relay.
    pub fn new(meeting: &str, member: Member) -> Self {
        GroupSession {
            meeting: meeting.to_owned(),
            member,
            me: 0,
            phase: Phase::Waiting,
            head: 0,
            refused_head: 0,
            roster: HashMap::new(),
            offers: BTreeMap::new(),
            added_at: HashMap::new(),
            participant_of: HashMap::new(),
            waiting_since_ms: 0,
            last_offer_ms: None,
            founding: None,
            last_found_ms: None,
            committing: None,
            events: VecDeque::new(),
            counters: SessionCounters::default(),
        }
    }

    /// Where the participant stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The group's epoch while the participant is in it.
    pub fn epoch(&self) -> Option<u64> {
        match self.phase {
            Phase::InGroup => self.member.epoch(),
            Phase::Waiting => None,
        }
    }

    /// The member (epoch, roster, verification codes, seal and open).
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The member, to seal and open frames.
    pub fn member_mut(&mut self) -> &mut Member {
        &mut self.member
    }

    /// Refused input so far.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// The next thing that happened, if any.
    pub fn next_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// The relay admitted the participant as `me`, with `others` (participant id, user)
    /// already there and `head` the meeting's last commit or founding it knows of; after a
    /// reconnection too (the participant starts again: it is welcomed into the group anew).
    /// Returns what to send.
    pub fn joined(
        &mut self,
        me: u64,
        others: &[(u64, String)],
        head: u64,
        now_ms: u64,
    ) -> Vec<Handshake> {
        self.member.reset();
        self.me = me;
        self.phase = Phase::Waiting;
        self.head = head;
        self.refused_head = 0;
        self.roster = others.iter().cloned().collect();
        self.offers.clear();
        self.added_at.clear();
        self.participant_of.clear();
        self.waiting_since_ms = now_ms;
        self.last_offer_ms = None;
        self.founding = None;
        self.last_found_ms = None;
        self.committing = None;
        self.poll(now_ms)
    }

    /// Another participant joined (or changed): `user` is its identity.
    pub fn participant_joined(&mut self, id: u64, user: &str) {
        if id != self.me {
            self.roster.insert(id, user.to_owned());
        }
    }

    /// Another participant left.
    pub fn participant_left(&mut self, id: u64) {
        self.roster.remove(&id);
        self.offers.retain(|_, offer| offer.participant != id);
    }

    /// Whether `user` is in the meeting (this participant included).
    fn online(&self, user: &str) -> bool {
        user == self.member.name() || self.roster.values().any(|u| u == user)
    }

    /// What to send now: an offer that is due, a founding, or a commit if this member is
    /// the committer and something is to be done. Call after every input and now and then.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Handshake> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Waiting => {
                let due = self
                    .last_offer_ms
                    .is_none_or(|last| now_ms.saturating_sub(last) >= OFFER_INTERVAL_MS);
                if due {
                    match self.member.key_package() {
                        Ok(key_package) => {
                            self.last_offer_ms = Some(now_ms);
                            out.push(handshake(
                                HandshakeKind::KeyPackage,
                                self.head,
                                key_package,
                                Vec::new(),
                            ));
                        }
                        Err(e) => self.refused(0, format!("making a key package: {e}")),
                    }
                }
                // Found at once when nobody else is here, or when the meeting never had a
                // group (two who found at once: the delivery service's order takes one, and
                // the other offers); otherwise after waiting long enough to be added.
                let known = self.head.max(self.refused_head);
                let alone = self.roster.is_empty() || known == 0;
                let stuck = now_ms.saturating_sub(self.waiting_since_ms) >= FOUND_AFTER_MS;
                let may = self
                    .last_found_ms
                    .is_none_or(|last| now_ms.saturating_sub(last) >= OFFER_INTERVAL_MS);
                if self.founding.is_none() && may && (alone || stuck) {
                    self.founding = Some(known);
                    self.last_found_ms = Some(now_ms);
                    self.waiting_since_ms = now_ms;
                    out.push(handshake(
                        HandshakeKind::Found,
                        known,
                        Vec::new(),
                        Vec::new(),
                    ));
                }
            }
            Phase::InGroup => {
                if self.committing.is_none() {
                    if let Some(commit) = self.commit() {
                        out.push(commit);
                    }
                }
            }
        }
        out
    }

    /// The lowest leaf in the meeting commits: who is gone goes, who offers is added.
    fn commit(&mut self) -> Option<Handshake> {
        let own = self.member.own_leaf()?;
        let roster: Vec<(u32, Identity)> = self
            .member
            .roster()
            .iter()
            .map(|(leaf, who)| (*leaf, who.clone()))
            .collect();
        let committer = roster
            .iter()
            .find(|(_, who)| self.online(&who.user))
            .map(|(leaf, _)| *leaf);
        if committer != Some(own) {
            return None;
        }
        let gone: Vec<String> = roster
            .iter()
            .filter(|(_, who)| !self.online(&who.user))
            .map(|(_, who)| who.user.clone())
            .collect();
        // A member that offers a key package after it saw itself added, or from another
        // session than the one added, lost its state: out, then in.
        let lost: Vec<String> = roster
            .iter()
            .filter(|(leaf, who)| {
                *leaf != own
                    && self.offers.get(&who.user).is_some_and(|offer| {
                        let added = self.added_at.get(&who.user).copied().unwrap_or(0);
                        offer.sequence > added
                            && (offer.after >= added
                                || self
                                    .participant_of
                                    .get(&who.user)
                                    .is_some_and(|p| *p != offer.participant))
                    })
            })
            .map(|(_, who)| who.user.clone())
            .collect();
        let members: Vec<&str> = roster.iter().map(|(_, who)| who.user.as_str()).collect();
        let proposed = if !gone.is_empty() || !lost.is_empty() {
            let names: Vec<&str> = gone.iter().chain(lost.iter()).map(String::as_str).collect();
            self.member.propose_remove(&names)
        } else {
            let joining: Vec<(String, Vec<u8>)> = self
                .offers
                .iter()
                .filter(|(user, offer)| {
                    !members.contains(&user.as_str())
                        && self.roster.get(&offer.participant) == Some(*user)
                })
                .map(|(user, offer)| (user.clone(), offer.key_package.clone()))
                .collect();
            if joining.is_empty() {
                return None;
            }
            let packages: Vec<&[u8]> = joining.iter().map(|(_, kp)| kp.as_slice()).collect();
            match self.member.propose_add(&packages) {
                Err(
                    e @ (E2eeError::Malformed { .. }
                    | E2eeError::Refused { .. }
                    | E2eeError::CredentialRefused { .. }),
                ) => {
                    // One of them is bad: find it, drop it, and add the others next time.
                    for (user, key_package) in &joining {
                        if self.member.key_package_owner(key_package).is_err() {
                            self.offers.remove(user);
                            self.counters.key_packages_refused += 1;
                        }
                    }
                    self.refused(0, format!("adding: {e}"));
                    return None;
                }
                other => other,
            }
        };
        match proposed {
            Ok(proposed) => {
                self.committing = Some(self.head);
                Some(handshake(
                    HandshakeKind::Commit,
                    self.head,
                    proposed.commit,
                    proposed.welcome.unwrap_or_default(),
                ))
            }
            Err(e) => {
                self.refused(0, format!("committing: {e}"));
                None
            }
        }
    }

    /// A handshake message the relay delivered (in the meeting's order). Returns what to
    /// send.
    pub fn handshake(&mut self, delivered: &Handshake, now_ms: u64) -> Vec<Handshake> {
        let kind = HandshakeKind::try_from(delivered.kind).unwrap_or(HandshakeKind::Unspecified);
        match kind {
            HandshakeKind::KeyPackage => self.offered(delivered),
            HandshakeKind::Commit | HandshakeKind::Found if delivered.sequence <= self.head => {
                // Seen already (the relay follows the order again after a failure).
            }
            HandshakeKind::Commit => self.committed(delivered, now_ms),
            HandshakeKind::Found => self.founded(delivered, now_ms),
            HandshakeKind::Unspecified => {}
        }
        self.poll(now_ms)
    }

    fn offered(&mut self, delivered: &Handshake) {
        let from = delivered.from_participant_id;
        if from == self.me {
            return;
        }
        // The sender may not be in the roster yet (the relays' news of it can come after its
        // offer): its name is checked again before it is added.
        let sender = self.roster.get(&from).cloned();
        match self.member.key_package_owner(&delivered.message) {
            Ok(owner) if sender.as_ref().is_none_or(|s| *s == owner.user) => {
                self.offers.insert(
                    owner.user,
                    Offer {
                        sequence: delivered.sequence,
                        after: delivered.after,
                        participant: from,
                        key_package: delivered.message.to_vec(),
                    },
                );
            }
            Ok(owner) => {
                self.counters.key_packages_refused += 1;
                self.refused(
                    from,
                    format!(
                        "a key package of {:?} from participant {from}, who joined as {:?}",
                        owner.user,
                        sender.unwrap_or_default()
                    ),
                );
            }
            Err(e) => {
                self.counters.key_packages_refused += 1;
                self.refused(from, format!("key package: {e}"));
            }
        }
    }

    fn committed(&mut self, delivered: &Handshake, now_ms: u64) {
        let sequence = delivered.sequence;
        match self.phase {
            Phase::Waiting => {
                self.head = sequence;
                if delivered.welcome.is_empty() {
                    return;
                }
                match self.member.join(&delivered.welcome) {
                    Ok(_) => {
                        for (_, who) in self.member.roster().clone() {
                            self.added_at.insert(who.user, sequence);
                        }
                        self.entered();
                    }
                    // Another joiner's Welcome.
                    Err(E2eeError::Refused { .. }) => {}
                    Err(e) => {
                        self.counters.welcomes_refused += 1;
                        self.refused(delivered.from_participant_id, format!("welcome: {e}"));
                    }
                }
            }
            Phase::InGroup => {
                let mine = self.head;
                self.head = sequence;
                if delivered.after != mine {
                    // It follows a commit this member never saw: start again.
                    self.counters.resyncs += 1;
                    self.leave_group(
                        format!(
                            "missed a commit (it follows {}, this member's last is {mine})",
                            delivered.after
                        ),
                        now_ms,
                    );
                    return;
                }
                // Whatever this member proposed after `mine` has its answer now.
                self.committing = None;
                let before: Vec<String> = self.member.members();
                match self.member.handle(&delivered.message) {
                    Ok(Handled::Removed) => {
                        self.leave_group("removed from the group".into(), now_ms);
                    }
                    Ok(outcome) => {
                        if let Handled::Advanced {
                            superseded: true, ..
                        } = outcome
                        {
                            self.counters.commits_lost += 1;
                        }
                        // What a lost commit was for is decided again from the new epoch.
                        if let Err(e) = self.member.abandon_commit() {
                            self.refused(0, format!("dropping a lost commit: {e}"));
                        }
                        for user in self.member.members() {
                            if !before.contains(&user) {
                                if let Some(offer) = self.offers.get(&user) {
                                    self.participant_of.insert(user.clone(), offer.participant);
                                }
                                self.added_at.insert(user, sequence);
                            }
                        }
                        self.entered();
                    }
                    Err(e) => {
                        // Everyone refuses it alike and goes on from it.
                        self.counters.commits_refused += 1;
                        if self.member.has_pending_commit() {
                            self.counters.commits_lost += 1;
                            let _ = self.member.abandon_commit();
                        }
                        self.refused(delivered.from_participant_id, format!("commit: {e}"));
                    }
                }
            }
        }
    }

    fn founded(&mut self, delivered: &Handshake, now_ms: u64) {
        let sequence = delivered.sequence;
        let mine = delivered.from_participant_id == self.me && self.founding.is_some();
        self.head = sequence;
        self.founding = None;
        self.committing = None;
        if mine {
            self.member.reset();
            match self.member.create(&self.meeting) {
                Ok(()) => {
                    self.added_at.clear();
                    self.participant_of.clear();
                    self.added_at
                        .insert(self.member.name().to_owned(), sequence);
                    self.participant_of
                        .insert(self.member.name().to_owned(), self.me);
                    self.entered();
                }
                Err(e) => self.refused(0, format!("founding the group: {e}")),
            }
        } else if self.phase == Phase::InGroup {
            self.leave_group("the group was founded afresh".into(), now_ms);
        } else {
            // Offer to the new founder at once.
            self.last_offer_ms = None;
        }
    }

    fn entered(&mut self) {
        self.phase = Phase::InGroup;
        // Offers from before a commit that made their owner a member are spent.
        let added_at = &self.added_at;
        self.offers.retain(|user, offer| {
            added_at
                .get(user)
                .is_none_or(|added| offer.sequence > *added)
        });
        let own = self.member.own_leaf();
        let members = self
            .member
            .roster()
            .iter()
            .map(|(leaf, identity)| GroupMember {
                leaf: *leaf,
                identity: identity.clone(),
                code: self.member.verification_code(*leaf).unwrap_or_default(),
                me: Some(*leaf) == own,
            })
            .collect();
        self.events.push_back(GroupEvent::Epoch {
            epoch: self.member.epoch().unwrap_or_default(),
            members,
        });
    }

    fn leave_group(&mut self, reason: String, now_ms: u64) {
        self.member.reset();
        self.phase = Phase::Waiting;
        self.committing = None;
        self.added_at.clear();
        self.participant_of.clear();
        self.waiting_since_ms = now_ms;
        self.last_offer_ms = None;
        self.events.push_back(GroupEvent::Left { reason });
    }

    /// The relay refused one of this participant's handshake messages. Returns what to send.
    pub fn refused_by_relay(&mut self, refusal: &HandshakeRefused, now_ms: u64) -> Vec<Handshake> {
        let kind = HandshakeKind::try_from(refusal.kind).unwrap_or(HandshakeKind::Unspecified);
        match kind {
            HandshakeKind::Commit => {
                if self.committing == Some(refusal.after) {
                    self.committing = None;
                    self.counters.commits_lost += 1;
                    if let Err(e) = self.member.abandon_commit() {
                        self.refused(0, format!("dropping a refused commit: {e}"));
                    }
                }
                // The commit that won is on its way; the next poll after it decides again.
                return Vec::new();
            }
            HandshakeKind::Found => {
                if self.founding == Some(refusal.after) {
                    self.founding = None;
                    if refusal.head > self.head.max(self.refused_head)
                        && self.phase == Phase::Waiting
                    {
                        // The group is further on: found after it if still alone, else wait
                        // to be added (the offer goes again). Not a head this participant has
                        // seen: the commit that adds it may be on its way, and must still be
                        // taken when it comes; the offer says what was seen.
                        self.refused_head = refusal.head;
                        self.last_offer_ms = None;
                        self.last_found_ms = None;
                    }
                }
            }
            // Offered again at its interval (a refused offer was over the rate, or the relays'
            // queue was full: sending it again at once would not help).
            HandshakeKind::KeyPackage => {}
            HandshakeKind::Unspecified => {}
        }
        self.poll(now_ms)
    }

    fn refused(&mut self, from: u64, reason: String) {
        self.events.push_back(GroupEvent::Refused { from, reason });
    }
}
