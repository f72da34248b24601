//! A request for a seat: what joining a meeting asks of the meeting and relay tables alike.

/// A request for a seat in a meeting.
#[derive(Debug, Clone)]
pub struct SeatRequest<'a> {
    /// Meeting.
    pub meeting_id: &'a str,
    /// Identity the token will carry.
    pub identity: &'a str,
    /// Now (ms).
    pub now_ms: i64,
    /// The seat lapses at this time unless its holder is connected (ms).
    pub connect_by_ms: i64,
    /// Relays heard from since then are alive (ms).
    pub fresh_since_ms: i64,
}
