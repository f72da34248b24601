//! The join handshake: a `Join` with the grant's token goes first, and the relay answers with
//! `Joined` or an error; anything else before it (others' media may overtake `Joined` on
//! WebTransport) is not the answer.

use videocall_protocol::wire::{envelope::Body, ErrorCode, Join, Joined};

/// What a join asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The grant's join token.
    pub token: String,
    /// The meeting.
    pub meeting_id: String,
    /// Free-form description of the client, for the relay's logs.
    pub client: String,
}

/// What a message from the relay does to a join in progress.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinStep {
    /// In: the relay's welcome (own id, who is there).
    Joined(Joined),
    /// The relay refused the join.
    Refused {
        /// Why, as a code.
        code: ErrorCode,
        /// The relay's words.
        message: String,
    },
    /// Not the answer yet.
    Waiting,
}

/// A join in progress: sent at some time, answered or given up on by a deadline.
#[derive(Debug, Clone)]
pub struct Joining {
    deadline_ms: u64,
}

impl Joining {
    /// Starts joining at `now_ms`, giving the relay `timeout_ms` to answer; returns the join
    /// and the message to send first.
    pub fn start(request: JoinRequest, now_ms: u64, timeout_ms: u64) -> (Joining, Body) {
        let join = Body::Join(Join {
            token: request.token,
            meeting_id: request.meeting_id,
            client: request.client,
        });
        (
            Joining {
                deadline_ms: now_ms.saturating_add(timeout_ms),
            },
            join,
        )
    }

    /// What `body`, from the relay, means for the join.
    pub fn receive(&self, body: Body) -> JoinStep {
        match body {
            Body::Joined(joined) => JoinStep::Joined(joined),
            Body::Error(error) => JoinStep::Refused {
                code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified),
                message: error.message,
            },
            _ => JoinStep::Waiting,
        }
    }

    /// Milliseconds left at `now_ms` before giving up (0 once past the deadline).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.deadline_ms.saturating_sub(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_protocol::wire::{Error, Media};

    fn start() -> (Joining, Body) {
        Joining::start(
            JoinRequest {
                token: "t".into(),
                meeting_id: "m".into(),
                client: "test".into(),
            },
            1000,
            5000,
        )
    }

    #[test]
    fn the_join_carries_the_token_and_meeting() {
        let (_, first) = start();
        let Body::Join(join) = first else {
            panic!("a Join goes first: {first:?}");
        };
        assert_eq!((join.token.as_str(), join.meeting_id.as_str()), ("t", "m"));
    }

    #[test]
    fn joined_ends_it_an_error_refuses_it_and_anything_else_waits() {
        let (joining, _) = start();
        let joined = Joined {
            participant_id: 7,
            ..Default::default()
        };
        assert_eq!(
            joining.receive(Body::Joined(joined.clone())),
            JoinStep::Joined(joined)
        );
        let refused = joining.receive(Body::Error(Error {
            code: ErrorCode::MeetingFull as i32,
            message: "full".into(),
            ..Default::default()
        }));
        assert_eq!(
            refused,
            JoinStep::Refused {
                code: ErrorCode::MeetingFull,
                message: "full".into()
            }
        );
        assert_eq!(
            joining.receive(Body::Media(Media::default())),
            JoinStep::Waiting
        );
    }

    #[test]
    fn an_unknown_error_code_is_unspecified() {
        let (joining, _) = start();
        let refused = joining.receive(Body::Error(Error {
            code: 9999,
            message: "?".into(),
            ..Default::default()
        }));
        assert!(matches!(
            refused,
            JoinStep::Refused {
                code: ErrorCode::Unspecified,
                ..
            }
        ));
    }

    #[test]
    fn the_deadline_counts_down_to_zero() {
        let (joining, _) = start();
        assert_eq!(joining.remaining_ms(1000), 5000);
        assert_eq!(joining.remaining_ms(5999), 1);
        assert_eq!(joining.remaining_ms(6000), 0);
        assert_eq!(joining.remaining_ms(90_000), 0);
    }
}
