//! The relay registry: registrations, heartbeats with load, and who is connected where.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::seat::SeatRequest;
use super::{audited, flag, get, Store, StoreError};

/// What placement sees of the relays for one join.
#[derive(Debug, Default)]
pub(super) struct PlacementView {
    /// Relays with a fresh heartbeat.
    pub fresh: Vec<RelayRecord>,
    /// Those hosting the meeting, most participants first.
    pub hosts: Vec<MeetingHost>,
    /// Seats held by other identities.
    pub seats_taken: i64,
}

/// A relay hosting a meeting, for placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingHost {
    /// Relay id.
    pub relay_id: String,
    /// The meeting's participants on it: connected, or granted and on their way.
    pub participants: u32,
}

/// A registered relay and its last reported load.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayRecord {
    /// Relay id.
    pub relay_id: String,
    /// WebTransport URL.
    pub webtransport_url: String,
    /// WebSocket URL.
    pub websocket_url: String,
    /// Self-signed certificate hashes (hex).
    pub certificate_sha256: Vec<String>,
    /// Admin URL.
    pub admin_url: String,
    /// Participants it is sized for.
    pub capacity: u32,
    /// Participants now.
    pub participants: u32,
    /// Meetings now.
    pub meetings: u32,
    /// Media bitrate in (bits/s).
    pub bitrate_bps: u64,
    /// The relay says it is draining.
    pub draining: bool,
    /// An admin asked it to drain.
    pub drain_requested: bool,
    /// Last heartbeat (ms).
    pub last_heartbeat_ms: i64,
}

impl RelayRecord {
    /// Takes no new meetings.
    pub fn is_draining(&self) -> bool {
        self.draining || self.drain_requested
    }
}

/// One heartbeat's load.
#[derive(Debug, Clone, Default)]
pub struct RelayLoad {
    /// Participants.
    pub participants: u32,
    /// Meetings.
    pub meetings: u32,
    /// Bitrate in.
    pub bitrate_bps: u64,
    /// Draining.
    pub draining: bool,
    /// Who is connected.
    pub participants_live: Vec<LiveParticipantRecord>,
}

/// A participant connected to a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveParticipantRecord {
    /// Relay-local id.
    pub participant_id: u64,
    /// Meeting.
    pub meeting_id: String,
    /// Token subject.
    pub identity: String,
    /// Display name.
    pub display_name: String,
    /// Relay the participant is on.
    pub relay_id: String,
    /// Join time (ms).
    pub joined_at_ms: i64,
    /// Role in the meeting now: `host`, `cohost`, `participant`, `guest`.
    pub role: String,
}

const RELAY_COLUMNS: &str = "relay_id, webtransport_url, websocket_url, certificate_sha256, \
     admin_url, capacity, participants, meetings, bitrate_bps, draining, drain_requested, \
     last_heartbeat_ms";

fn relay_from(row: &AnyRow) -> Result<RelayRecord, sqlx::Error> {
    let hashes: String = get(row, "certificate_sha256")?;
    let count = |name: &str| -> Result<u32, sqlx::Error> {
        let n: i64 = get(row, name)?;
        Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
    };
    let bitrate: i64 = get(row, "bitrate_bps")?;
    Ok(RelayRecord {
        relay_id: get(row, "relay_id")?,
        webtransport_url: get(row, "webtransport_url")?,
        websocket_url: get(row, "websocket_url")?,
        certificate_sha256: hashes
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
        admin_url: get(row, "admin_url")?,
        capacity: count("capacity")?,
        participants: count("participants")?,
        meetings: count("meetings")?,
        bitrate_bps: u64::try_from(bitrate).unwrap_or(0),
        draining: flag(row, "draining")?,
        drain_requested: flag(row, "drain_requested")?,
        last_heartbeat_ms: get(row, "last_heartbeat_ms")?,
    })
}

fn participant_from(row: &AnyRow) -> Result<LiveParticipantRecord, sqlx::Error> {
    let id: i64 = get(row, "participant_id")?;
    Ok(LiveParticipantRecord {
        participant_id: id as u64,
        meeting_id: get(row, "meeting_id")?,
        identity: get(row, "identity")?,
        display_name: get(row, "display_name")?,
        relay_id: get(row, "relay_id")?,
        joined_at_ms: get(row, "joined_at_ms")?,
        role: get(row, "role")?,
    })
}

impl Store {
    /// Registers (or re-registers) a relay. Registering is what a newly started relay
    /// process does, so it clears a drain asked of the process it replaces.
    pub async fn register_relay(&self, relay: &RelayRecord, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO relays (relay_id, webtransport_url, websocket_url, certificate_sha256, \
             admin_url, capacity, participants, meetings, bitrate_bps, draining, drain_requested, \
             registered_at_ms, last_heartbeat_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0, 0, 0, $7, $7) \
             ON CONFLICT (relay_id) DO UPDATE SET webtransport_url = excluded.webtransport_url, \
             websocket_url = excluded.websocket_url, \
             certificate_sha256 = excluded.certificate_sha256, admin_url = excluded.admin_url, \
             capacity = excluded.capacity, registered_at_ms = excluded.registered_at_ms, \
             last_heartbeat_ms = excluded.last_heartbeat_ms, draining = 0, drain_requested = 0",
        )
        .bind(&relay.relay_id)
        .bind(&relay.webtransport_url)
        .bind(&relay.websocket_url)
        .bind(relay.certificate_sha256.join(","))
        .bind(&relay.admin_url)
        .bind(i64::from(relay.capacity))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a heartbeat; `NotFound` when the relay is not registered.
    /// Returns whether an admin asked it to drain.
    pub async fn heartbeat(
        &self,
        relay_id: &str,
        load: &RelayLoad,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.relaxed_pool().begin().await?;
        let done = sqlx::query(
            "UPDATE relays SET participants = $2, meetings = $3, bitrate_bps = $4, \
             draining = $5, last_heartbeat_ms = $6 WHERE relay_id = $1",
        )
        .bind(relay_id)
        .bind(i64::from(load.participants))
        .bind(i64::from(load.meetings))
        .bind(i64::try_from(load.bitrate_bps).unwrap_or(i64::MAX))
        .bind(i64::from(load.draining))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("relay {relay_id}")));
        }
        sqlx::query("DELETE FROM live_participants WHERE relay_id = $1")
            .bind(relay_id)
            .execute(&mut *tx)
            .await?;
        for chunk in load.participants_live.chunks(500) {
            let mut sql = String::from(
                "INSERT INTO live_participants (relay_id, participant_id, meeting_id, identity, \
                 display_name, joined_at_ms, role) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 7;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7
                ));
            }
            // A relay reports each participant once; a repeat would be a relay bug, not a
            // reason to lose the heartbeat.
            sql.push_str(" ON CONFLICT (relay_id, participant_id) DO NOTHING");
            let mut query = sqlx::query(audited(sql));
            for p in chunk {
                query = query
                    .bind(relay_id)
                    .bind(p.participant_id as i64)
                    .bind(&p.meeting_id)
                    .bind(&p.identity)
                    .bind(&p.display_name)
                    .bind(p.joined_at_ms)
                    .bind(&p.role);
            }
            query.execute(&mut *tx).await?;
        }
        let row = sqlx::query("SELECT drain_requested FROM relays WHERE relay_id = $1")
            .bind(relay_id)
            .fetch_one(&mut *tx)
            .await?;
        let drain = flag(&row, "drain_requested")?;
        tx.commit().await?;
        Ok(drain)
    }

    /// Marks a relay for draining; `NotFound` when it is not registered.
    pub async fn request_drain(&self, relay_id: &str) -> Result<RelayRecord, StoreError> {
        let done = sqlx::query("UPDATE relays SET drain_requested = 1 WHERE relay_id = $1")
            .bind(relay_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("relay {relay_id}")));
        }
        self.relay(relay_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("relay {relay_id}")))
    }

    /// One relay.
    pub async fn relay(&self, relay_id: &str) -> Result<Option<RelayRecord>, StoreError> {
        let row = sqlx::query(audited(format!(
            "SELECT {RELAY_COLUMNS} FROM relays WHERE relay_id = $1"
        )))
        .bind(relay_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(relay_from).transpose()?)
    }

    /// Every registered relay, by id.
    pub async fn relays(&self) -> Result<Vec<RelayRecord>, StoreError> {
        let rows = sqlx::query(audited(format!(
            "SELECT {RELAY_COLUMNS} FROM relays ORDER BY relay_id"
        )))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(relay_from).collect::<Result<_, _>>()?)
    }

    /// For a join: fresh relays, those of them hosting the meeting (most participants
    /// first), and the seats other identities hold, in one query.
    pub(super) async fn placement_view(
        &self,
        tx: &mut Transaction<'_, Any>,
        request: &SeatRequest<'_>,
    ) -> Result<PlacementView, StoreError> {
        // The seat count rides along on every relay row; with no fresh relay there is no row
        // and the join fails for want of a relay whatever the count.
        let rows = sqlx::query(audited(format!(
            "SELECT {RELAY_COLUMNS}, (SELECT COUNT(*) FROM live_participants lp \
             WHERE lp.relay_id = relays.relay_id AND lp.meeting_id = $2) AS hosting, \
             (SELECT COUNT(*) FROM seats s WHERE s.relay_id = relays.relay_id \
             AND s.meeting_id = $2 AND s.identity <> $3 AND s.connect_by_ms > $4 \
             AND NOT EXISTS (SELECT 1 FROM live_participants lp WHERE lp.relay_id = s.relay_id \
             AND lp.meeting_id = s.meeting_id AND lp.identity = s.identity)) AS hosting_pending, \
             (SELECT COUNT(*) FROM seats s WHERE s.meeting_id = $2 AND s.identity <> $3 \
             AND (s.connect_by_ms > $4 OR EXISTS (SELECT 1 FROM live_participants lp \
             JOIN relays r ON r.relay_id = lp.relay_id WHERE lp.meeting_id = s.meeting_id \
             AND lp.identity = s.identity AND r.last_heartbeat_ms >= $1))) AS seats_taken, \
             (SELECT COUNT(*) FROM seats s WHERE s.relay_id = relays.relay_id \
             AND s.identity <> $3 AND s.connect_by_ms > $4 AND NOT EXISTS (SELECT 1 FROM \
             live_participants lp WHERE lp.relay_id = s.relay_id \
             AND lp.meeting_id = s.meeting_id AND lp.identity = s.identity)) AS pending \
             FROM relays WHERE last_heartbeat_ms >= $1 ORDER BY relay_id"
        )))
        .bind(request.fresh_since_ms)
        .bind(request.meeting_id)
        .bind(request.identity)
        .bind(request.now_ms)
        .fetch_all(&mut **tx)
        .await?;
        let mut view = PlacementView::default();
        let mut hosts: Vec<MeetingHost> = Vec::new();
        for row in &rows {
            let mut relay = relay_from(row)?;
            // Grants not yet connected count as participants of their relay: a relay that
            // is full with people on their way sends the next one elsewhere, before its
            // next heartbeat says so.
            let pending: i64 = get(row, "pending")?;
            relay.participants = relay
                .participants
                .saturating_add(u32::try_from(pending).unwrap_or(u32::MAX));
            // People on their way count for the meeting's share of the relay too, so a
            // burst of joins spills as it should before anyone has connected.
            let hosting: i64 = get::<i64>(row, "hosting")? + get::<i64>(row, "hosting_pending")?;
            view.seats_taken = get(row, "seats_taken")?;
            if hosting > 0 {
                hosts.push(MeetingHost {
                    relay_id: relay.relay_id.clone(),
                    participants: u32::try_from(hosting).unwrap_or(u32::MAX),
                });
            }
            view.fresh.push(relay);
        }
        hosts.sort_by(|a, b| {
            b.participants
                .cmp(&a.participants)
                .then_with(|| a.relay_id.cmp(&b.relay_id))
        });
        view.hosts = hosts;
        Ok(view)
    }

    /// Participants of `meeting_id` on relays heard from since `fresh_since_ms`.
    pub async fn live_participants(
        &self,
        meeting_id: &str,
        fresh_since_ms: i64,
    ) -> Result<Vec<LiveParticipantRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT lp.relay_id AS relay_id, lp.participant_id AS participant_id, \
             lp.meeting_id AS meeting_id, lp.identity AS identity, \
             lp.display_name AS display_name, lp.joined_at_ms AS joined_at_ms, \
             lp.role AS role \
             FROM live_participants lp JOIN relays r ON r.relay_id = lp.relay_id \
             WHERE lp.meeting_id = $1 AND r.last_heartbeat_ms >= $2 \
             ORDER BY lp.joined_at_ms, lp.participant_id",
        )
        .bind(meeting_id)
        .bind(fresh_since_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(participant_from)
            .collect::<Result<_, _>>()?)
    }

    /// Meetings that ended after `since_ms`, with their end times (ms): relays refuse
    /// tokens issued before the end and disconnect whoever is still connected.
    pub async fn meetings_ended_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT id, ended_at_ms FROM meetings WHERE ended_at_ms > $1 ORDER BY id")
                .bind(since_ms)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    get(row, "id")?,
                    get::<Option<i64>>(row, "ended_at_ms")?.unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Live participants of a meeting on each relay: `(meeting, relay, count)`.
    pub async fn meeting_hosts(
        &self,
        meeting_ids: &[String],
        fresh_since_ms: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        if meeting_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..meeting_ids.len())
            .map(|i| format!("${}", i + 2))
            .collect();
        let sql = format!(
            "SELECT lp.meeting_id AS meeting_id, lp.relay_id AS relay_id, COUNT(*) AS n \
             FROM live_participants lp JOIN relays r ON r.relay_id = lp.relay_id \
             WHERE r.last_heartbeat_ms >= $1 AND lp.meeting_id IN ({}) \
             GROUP BY lp.meeting_id, lp.relay_id ORDER BY lp.meeting_id, lp.relay_id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(audited(sql)).bind(fresh_since_ms);
        for id in meeting_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    get(row, "meeting_id")?,
                    get(row, "relay_id")?,
                    get(row, "n")?,
                ))
            })
            .collect()
    }

    /// Meeting ids with participants on `relay_id`.
    pub async fn meetings_on(&self, relay_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT meeting_id FROM live_participants WHERE relay_id = $1 ORDER BY meeting_id",
        )
        .bind(relay_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| get(row, "meeting_id").map_err(StoreError::from))
            .collect()
    }
}
