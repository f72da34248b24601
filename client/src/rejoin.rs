//! Staying in a meeting when its relay goes away: a [`Rejoining`] client asks its
//! [`GrantSource`] (the control plane) for a new grant that avoids the relays it just lost,
//! connects there and carries on. A relay killed outright stays "fresh" in the control plane
//! until its heartbeat lapses, so the grant names the relays to avoid.
//!
//! The decisions (which endings a new grant can help, how long to wait between attempts) are
//! plain functions, tested without sockets; the list of relays to avoid is the protocol's
//! [`AvoidList`], which the browser client keeps too.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
pub use videocall_protocol::avoid::{AvoidList, MAX_AVOIDED_RELAYS};
use videocall_protocol::wire::{self, envelope::Body, ErrorCode};

use crate::member_seed::MemberSeed;
use crate::{Client, ClientError, ConnectOptions, Event, RelayAddress, Sender, Transport};

/// Permission to join a meeting on one relay.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The relay's id, as placement knows it.
    pub relay_id: String,
    /// How to reach it.
    pub relay: RelayAddress,
    /// The meeting.
    pub meeting_id: String,
    /// Join token for that relay's `Join`.
    pub token: String,
    /// The meeting is end-to-end encrypted: the session encrypts as this member (its key and
    /// the control plane's credential for it). `None`: a meeting in clear.
    pub encryption: Option<MemberSeed>,
}

/// Where grants come from: the control plane's `JoinMeeting`, or anything a test provides.
pub trait GrantSource: Send {
    /// A grant on a relay other than those in `avoid` when placement has one.
    fn grant(
        &mut self,
        avoid: &[String],
    ) -> impl Future<Output = Result<Grant, ClientError>> + Send;
}

/// What a [`Rejoining`] client reports.
#[derive(Debug, Clone)]
pub enum RejoinEvent {
    /// A message from the current relay.
    Message(Body),
    /// Something happened to the current session's encrypted group.
    Encryption(videocall_e2ee::GroupEvent),
    /// The current session was lost (its relay gone, draining, or the token expired); the
    /// next [`Rejoining::next_event`] joins again through a new grant that avoids that relay.
    Lost {
        /// The relay that was lost.
        relay_id: String,
        /// Why the session ended.
        reason: String,
    },
    /// The relay was lost and the client joined again (a new participant id, perhaps on
    /// another relay): announce the tracks again on the new [`Rejoining::sender`].
    Rejoined {
        /// The relay it joined.
        relay_id: String,
        /// The welcome from that relay.
        joined: wire::Joined,
        /// Why the last session ended.
        after: String,
    },
    /// The session ended for good: left, refused for a reason a new grant does not mend,
    /// or no relay took the client back in time.
    Ended {
        /// Transport close code of the last session (wire error code, 0 for none).
        code: u32,
        /// Why.
        reason: String,
    },
}

/// Whether a session that closed with `code` (0, or a wire [`ErrorCode`]) is worth joining
/// again: a lost relay, a draining or full one, an expired token are; a meeting that ended,
/// a removal or a refused token are not.
pub fn rejoin_helps(code: u32) -> bool {
    let code = i32::try_from(code)
        .ok()
        .and_then(|c| ErrorCode::try_from(c).ok());
    match code {
        None | Some(ErrorCode::Unspecified) => true,
        Some(
            ErrorCode::TokenExpired
            | ErrorCode::TokenUnknownKey
            | ErrorCode::RelayFull
            | ErrorCode::RateLimited
            | ErrorCode::Draining
            | ErrorCode::Timeout
            | ErrorCode::SlowConsumer
            | ErrorCode::Internal,
        ) => true,
        Some(
            ErrorCode::Malformed
            | ErrorCode::UnknownMessage
            | ErrorCode::FrameTooLarge
            | ErrorCode::UnsupportedVersion
            | ErrorCode::TokenMissing
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenWrongMeeting
            | ErrorCode::Forbidden
            | ErrorCode::MeetingFull
            | ErrorCode::NotJoined
            | ErrorCode::AlreadyJoined
            | ErrorCode::MeetingEnded
            | ErrorCode::NotEncrypted
            // A host locked the meeting: it stays locked for a new grant too.
            | ErrorCode::MeetingLocked
            // Another session of the same identity took this one's place: rejoining would
            // take it back, and the two would trade places for ever.
            | ErrorCode::Replaced,
        ) => false,
    }
}

/// Whether a failed attempt to join is worth another (a fresh grant may mend it).
pub fn worth_retrying(error: &ClientError) -> bool {
    match error {
        ClientError::Refused { code, .. } => rejoin_helps(*code as u32),
        ClientError::Closed { code, .. } => rejoin_helps(*code),
        ClientError::GrantRefused { retry, .. } => *retry,
        ClientError::Connect(_) | ClientError::Timeout | ClientError::Protocol(_) => true,
        ClientError::NotInGroup | ClientError::Encryption(_) => false,
    }
}

/// The pause before attempt `n` (0-based) of one rejoin: none at first (the relay is known
/// lost), then 250 ms doubling to 2 s.
pub fn backoff(attempt: u32) -> Duration {
    match attempt {
        0 => Duration::ZERO,
        n => Duration::from_millis(250 << (n - 1).min(3)),
    }
}

/// Adjusts the options of every connection a [`Rejoining`] makes (client name, timeouts,
/// trusted authorities).
pub type Configure = std::sync::Arc<dyn Fn(&mut ConnectOptions) + Send + Sync>;

/// A client that rejoins through its grant source when its relay is lost.
pub struct Rejoining<G> {
    grants: G,
    transport: Transport,
    configure: Configure,
    give_up_after: Duration,
    client: Client,
    relay_id: String,
    avoid: AvoidList,
    left: bool,
    /// The close code and reason of a session lost but not yet rejoined.
    lost: Option<(u32, String)>,
}

impl<G: GrantSource> Rejoining<G> {
    /// Joins with a first grant from `grants`; `configure` adjusts the options of every
    /// connection (client name, timeouts). After a loss, attempts go on for `give_up_after`.
    pub async fn join(
        mut grants: G,
        transport: Transport,
        configure: Configure,
        give_up_after: Duration,
    ) -> Result<Self, ClientError> {
        let grant = grants.grant(&[]).await?;
        let client = connect(transport, &configure, &grant).await?;
        Ok(Rejoining {
            grants,
            transport,
            configure,
            give_up_after,
            client,
            relay_id: grant.relay_id,
            avoid: AvoidList::default(),
            left: false,
            lost: None,
        })
    }

    /// The relay of the current session.
    pub fn relay_id(&self) -> &str {
        &self.relay_id
    }

    /// Own participant id in the current session (it changes on a rejoin).
    pub fn participant_id(&self) -> u64 {
        self.client.participant_id()
    }

    /// The current session's welcome.
    pub fn joined(&self) -> &wire::Joined {
        &self.client.joined
    }

    /// A sender on the current session (take a new one after [`RejoinEvent::Rejoined`]).
    pub fn sender(&self) -> Sender {
        self.client.sender()
    }

    /// Leaves the meeting; the next event is [`RejoinEvent::Ended`].
    pub async fn leave(&mut self) {
        self.left = true;
        self.client.sender().leave().await;
    }

    /// The next event: a message, or [`RejoinEvent::Lost`] when the session ends in a way a new
    /// grant may mend, and then (on the call after) [`RejoinEvent::Rejoined`] once it has
    /// joined again, or [`RejoinEvent::Ended`].
    pub async fn next_event(&mut self) -> RejoinEvent {
        if let Some((code, reason)) = self.lost.take() {
            return self.rejoin_after(code, reason).await;
        }
        let (code, reason) = match self.client.next_event().await {
            Some(Event::Message(body)) => return RejoinEvent::Message(body),
            Some(Event::Encryption(event)) => return RejoinEvent::Encryption(event),
            Some(Event::Closed { code, reason }) => (code, reason),
            None => (0, "connection lost".to_owned()),
        };
        if self.left || !rejoin_helps(code) {
            return RejoinEvent::Ended { code, reason };
        }
        tracing::info!(relay = %self.relay_id, code, %reason, "relay lost; rejoining");
        self.avoid.lost(&self.relay_id);
        self.lost = Some((code, reason.clone()));
        RejoinEvent::Lost {
            relay_id: self.relay_id.clone(),
            reason,
        }
    }

    async fn rejoin_after(&mut self, code: u32, reason: String) -> RejoinEvent {
        match self.rejoin().await {
            Ok(()) => RejoinEvent::Rejoined {
                relay_id: self.relay_id.clone(),
                joined: self.client.joined.clone(),
                after: reason,
            },
            Err(error) => {
                let code = match &error {
                    ClientError::Refused { code, .. } => *code as u32,
                    ClientError::Closed { code, .. } => *code,
                    _ => code,
                };
                RejoinEvent::Ended {
                    code,
                    reason: format!("{reason}; rejoining failed: {error}"),
                }
            }
        }
    }

    async fn rejoin(&mut self) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.give_up_after;
        let mut attempt = 0;
        loop {
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            let result = match self.grants.grant(self.avoid.as_slice()).await {
                Ok(grant) => match connect(self.transport, &self.configure, &grant).await {
                    Ok(client) => Ok((client, grant.relay_id)),
                    Err(error) => {
                        self.avoid.lost(&grant.relay_id);
                        Err(error)
                    }
                },
                Err(error) => Err(error),
            };
            match result {
                Ok((client, relay_id)) => {
                    tracing::info!(relay = %relay_id, attempt, "rejoined");
                    self.client = client;
                    self.relay_id = relay_id;
                    self.avoid.clear();
                    return Ok(());
                }
                Err(error) if !worth_retrying(&error) || Instant::now() >= deadline => {
                    return Err(error)
                }
                Err(error) => tracing::warn!(attempt, %error, "rejoin attempt failed"),
            }
        }
    }
}

/// Connects with `grant`, encrypting where the meeting requires it.
async fn connect(
    transport: Transport,
    configure: &Configure,
    grant: &Grant,
) -> Result<Client, ClientError> {
    let mut client = Client::connect(options(transport, configure, grant)).await?;
    if let Some(seed) = &grant.encryption {
        client.start_encryption(seed.member()?).await?;
    }
    Ok(client)
}

fn options(transport: Transport, configure: &Configure, grant: &Grant) -> ConnectOptions {
    let mut options = ConnectOptions::new(
        transport,
        grant.relay.clone(),
        &grant.meeting_id,
        &grant.token,
    );
    configure(&mut options);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_relay_is_worth_a_rejoin_and_an_ended_meeting_is_not() {
        assert!(rejoin_helps(0));
        for code in [
            ErrorCode::Draining,
            ErrorCode::TokenExpired,
            ErrorCode::Timeout,
            ErrorCode::RelayFull,
        ] {
            assert!(rejoin_helps(code as u32), "{code:?}");
        }
        for code in [
            ErrorCode::MeetingEnded,
            ErrorCode::Forbidden,
            ErrorCode::TokenInvalid,
            ErrorCode::MeetingFull,
            ErrorCode::Replaced,
            ErrorCode::MeetingLocked,
        ] {
            assert!(!rejoin_helps(code as u32), "{code:?}");
        }
        // A code from a newer relay: a fresh grant may help.
        assert!(rejoin_helps(9999));
    }

    #[test]
    fn attempts_start_at_once_and_back_off_to_two_seconds() {
        let delays: Vec<u64> = (0..6).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(delays, [0, 250, 500, 1000, 2000, 2000]);
    }

    #[test]
    fn refusals_a_new_grant_cannot_mend_stop_the_attempts() {
        let refused = |code| ClientError::Refused {
            code,
            message: String::new(),
        };
        assert!(worth_retrying(&refused(ErrorCode::Draining)));
        assert!(!worth_retrying(&refused(ErrorCode::MeetingEnded)));
        assert!(worth_retrying(&ClientError::Connect("refused".into())));
        assert!(!worth_retrying(&ClientError::GrantRefused {
            message: "not found".into(),
            retry: false
        }));
    }
}
