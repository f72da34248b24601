//! What hosts decide and do, kept where the meeting's state lives: bans, the lock, the
//! waiting room's queue, the record of host actions, and host actions from the API on their
//! way to the relays.

use sqlx::any::AnyRow;

use super::{audited, flag, get, Store, StoreError};

/// Where a waiter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaiterState {
    /// In the queue.
    Waiting,
    /// Let in: its ticket gets grants.
    Admitted,
    /// Turned away.
    Rejected,
}

impl WaiterState {
    fn as_str(self) -> &'static str {
        match self {
            WaiterState::Waiting => "waiting",
            WaiterState::Admitted => "admitted",
            WaiterState::Rejected => "rejected",
        }
    }

    fn parse(value: &str) -> WaiterState {
        match value {
            "admitted" => WaiterState::Admitted,
            "rejected" => WaiterState::Rejected,
            _ => WaiterState::Waiting,
        }
    }
}

/// Someone who asked to join a meeting with a waiting room.
#[derive(Debug, Clone)]
pub struct NewWaiter {
    /// Names it to hosts.
    pub id: String,
    /// SHA-256 of its ticket (the waiter's credential).
    pub ticket_hash: String,
    /// The meeting.
    pub meeting_id: String,
    /// The identity its grant will carry.
    pub identity: String,
    /// Its name.
    pub display_name: String,
    /// Joined without an account.
    pub guest: bool,
    /// Asked to join without sending media.
    pub receive_only: bool,
    /// Its MLS signing key, base64 (empty without one).
    pub e2ee_signature_key: String,
}

/// A waiter as stored.
#[derive(Debug, Clone)]
pub struct WaiterRecord {
    /// What it asked with.
    pub waiter: NewWaiter,
    /// Where it stands.
    pub state: WaiterState,
    /// Why it was turned away (a host's words, maybe empty).
    pub reason: String,
    /// When it asked (ms).
    pub asked_at_ms: i64,
    /// When it last asked for its answer (ms).
    pub seen_at_ms: i64,
}

/// One host action, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostActionEntry {
    /// When (ms).
    pub at_ms: i64,
    /// The meeting.
    pub meeting_id: String,
    /// Who (identity, or the API caller's username).
    pub by_identity: String,
    /// Their name.
    pub by_display_name: String,
    /// What (`mute`, `remove`, `admit`, …).
    pub action: String,
    /// To whom (empty: the meeting).
    pub target_identity: String,
    /// Their name.
    pub target_display_name: String,
    /// The details, in words.
    pub detail: String,
    /// `meeting` or `api`.
    pub via: String,
}

const WAITER_COLUMNS: &str = "id, ticket_hash, meeting_id, identity, display_name, guest, \
     receive_only, e2ee_signature_key, state, reason, asked_at_ms, seen_at_ms";

fn waiter_from(row: &AnyRow) -> Result<WaiterRecord, sqlx::Error> {
    Ok(WaiterRecord {
        waiter: NewWaiter {
            id: get(row, "id")?,
            ticket_hash: get(row, "ticket_hash")?,
            meeting_id: get(row, "meeting_id")?,
            identity: get(row, "identity")?,
            display_name: get(row, "display_name")?,
            guest: flag(row, "guest")?,
            receive_only: flag(row, "receive_only")?,
            e2ee_signature_key: get(row, "e2ee_signature_key")?,
        },
        state: WaiterState::parse(&get::<String>(row, "state")?),
        reason: get(row, "reason")?,
        asked_at_ms: get(row, "asked_at_ms")?,
        seen_at_ms: get(row, "seen_at_ms")?,
    })
}

fn action_from(row: &AnyRow) -> Result<HostActionEntry, sqlx::Error> {
    Ok(HostActionEntry {
        at_ms: get(row, "at_ms")?,
        meeting_id: get(row, "meeting_id")?,
        by_identity: get(row, "by_identity")?,
        by_display_name: get(row, "by_display_name")?,
        action: get(row, "action")?,
        target_identity: get(row, "target_identity")?,
        target_display_name: get(row, "target_display_name")?,
        detail: get(row, "detail")?,
        via: get(row, "via")?,
    })
}

impl Store {
    /// Bans `identity` from meeting `id` (again is no change; a meeting that is gone, none).
    pub async fn ban(&self, id: &str, identity: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meeting_bans (meeting_id, identity, banned_at_ms) SELECT $1, $2, $3 \
             WHERE EXISTS (SELECT 1 FROM meetings WHERE id = $1) \
             ON CONFLICT (meeting_id, identity) DO NOTHING",
        )
        .bind(id)
        .bind(identity)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether meeting `id` names `identity` as a host, and whether it bans it: one statement.
    pub async fn standing_in(&self, id: &str, identity: &str) -> Result<(bool, bool), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM meeting_hosts WHERE meeting_id = $1 AND username = $2) \
             AS host, (SELECT COUNT(*) FROM meeting_bans WHERE meeting_id = $1 AND identity = $2) \
             AS banned",
        )
        .bind(id)
        .bind(identity)
        .fetch_one(self.pool())
        .await?;
        Ok((
            get::<i64>(&row, "host")? > 0,
            get::<i64>(&row, "banned")? > 0,
        ))
    }

    /// Whether meeting `id` bans `identity`.
    pub async fn is_banned(&self, id: &str, identity: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT identity FROM meeting_bans WHERE meeting_id = $1 AND identity = $2",
        )
        .bind(id)
        .bind(identity)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// Locks or unlocks meeting `id`; whether that changed anything.
    pub async fn set_locked(&self, id: &str, locked: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE meetings SET locked = $2 WHERE id = $1 AND locked <> $2")
            .bind(id)
            .bind(i64::from(locked))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether `identity` holds a seat in meeting `id` (granted lately or connected).
    pub async fn has_seat(&self, id: &str, identity: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT identity FROM seats WHERE meeting_id = $1 AND identity = $2")
            .bind(id)
            .bind(identity)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// The roles relays heard from since `fresh_since_ms` report for `identity` in meeting `id`.
    pub async fn live_roles(
        &self,
        id: &str,
        identity: &str,
        fresh_since_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT lp.role AS role FROM live_participants lp \
             JOIN relays r ON r.relay_id = lp.relay_id \
             WHERE lp.meeting_id = $1 AND lp.identity = $2 AND r.last_heartbeat_ms >= $3",
        )
        .bind(id)
        .bind(identity)
        .bind(fresh_since_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| get(row, "role").map_err(StoreError::from))
            .collect()
    }

    /// Puts `waiter` in its meeting's queue at `now_ms`, unless `max_waiting` waiters heard
    /// from since `seen_since_ms` wait there already (`Full`). Waiters gone for longer than
    /// that are forgotten first.
    pub async fn add_waiter(
        &self,
        waiter: &NewWaiter,
        now_ms: i64,
        seen_since_ms: i64,
        max_waiting: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM waiting WHERE meeting_id = $1 AND state = 'waiting' AND seen_at_ms < $2",
        )
        .bind(&waiter.meeting_id)
        .bind(seen_since_ms)
        .execute(self.pool())
        .await?;
        let waiting = self
            .waiting_counts(std::slice::from_ref(&waiter.meeting_id), seen_since_ms)
            .await?
            .first()
            .map_or(0, |(_, n)| *n);
        if waiting >= max_waiting {
            return Err(StoreError::Full(waiter.meeting_id.clone()));
        }
        sqlx::query(
            "INSERT INTO waiting (id, ticket_hash, meeting_id, identity, display_name, guest, \
             receive_only, e2ee_signature_key, state, reason, asked_at_ms, seen_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', '', $9, $9)",
        )
        .bind(&waiter.id)
        .bind(&waiter.ticket_hash)
        .bind(&waiter.meeting_id)
        .bind(&waiter.identity)
        .bind(&waiter.display_name)
        .bind(i64::from(waiter.guest))
        .bind(i64::from(waiter.receive_only))
        .bind(&waiter.e2ee_signature_key)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The waiter holding the ticket with this hash in meeting `id`; its `seen_at_ms` becomes
    /// `now_ms` (written like heartbeats: waiters ask every second, so a lost write is
    /// rewritten within one).
    pub async fn waiter_by_ticket(
        &self,
        id: &str,
        ticket_hash: &str,
        now_ms: i64,
    ) -> Result<Option<WaiterRecord>, StoreError> {
        let _turn = self.write_turn().await;
        let row = sqlx::query(audited(format!(
            "UPDATE waiting SET seen_at_ms = $3 WHERE meeting_id = $1 AND ticket_hash = $2 \
             RETURNING {WAITER_COLUMNS}"
        )))
        .bind(id)
        .bind(ticket_hash)
        .bind(now_ms)
        .fetch_optional(self.relaxed_pool())
        .await?;
        row.as_ref()
            .map(waiter_from)
            .transpose()
            .map_err(StoreError::from)
    }

    /// Waiters of meeting `id` still waiting and heard from since `seen_since_ms`, oldest first.
    pub async fn waiting_list(
        &self,
        id: &str,
        seen_since_ms: i64,
    ) -> Result<Vec<WaiterRecord>, StoreError> {
        let rows = sqlx::query(audited(format!(
            "SELECT {WAITER_COLUMNS} FROM waiting WHERE meeting_id = $1 AND state = 'waiting' \
             AND seen_at_ms >= $2 ORDER BY asked_at_ms, id"
        )))
        .bind(id)
        .bind(seen_since_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| waiter_from(row).map_err(StoreError::from))
            .collect()
    }

    /// How many of meeting `id`'s waiters heard from since `seen_since_ms` asked before the one
    /// that asked at `asked_at_ms` with id `waiter_id`.
    pub async fn waiters_ahead(
        &self,
        id: &str,
        asked_at_ms: i64,
        waiter_id: &str,
        seen_since_ms: i64,
    ) -> Result<u32, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM waiting WHERE meeting_id = $1 AND state = 'waiting' \
             AND seen_at_ms >= $4 AND (asked_at_ms < $2 OR (asked_at_ms = $2 AND id < $3))",
        )
        .bind(id)
        .bind(asked_at_ms)
        .bind(waiter_id)
        .bind(seen_since_ms)
        .fetch_one(self.pool())
        .await?;
        let n: i64 = get(&row, "n")?;
        Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
    }

    /// Waiters in each of `ids` heard from since `seen_since_ms`: `(meeting, count)`.
    pub async fn waiting_counts(
        &self,
        ids: &[String],
        seen_since_ms: i64,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT meeting_id, COUNT(*) AS n FROM waiting WHERE state = 'waiting' \
             AND seen_at_ms >= $1 AND meeting_id IN ({}) GROUP BY meeting_id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(audited(sql)).bind(seen_since_ms);
        for id in ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                let n: i64 = get(row, "n")?;
                Ok((
                    get(row, "meeting_id")?,
                    u32::try_from(n.max(0)).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    }

    /// Admits (or turns away, with `reason`) the waiters of meeting `id` named by `waiter_ids`
    /// (`None`: all) that still wait and were heard from since `seen_since_ms`; returns them.
    pub async fn decide_waiters(
        &self,
        id: &str,
        waiter_ids: Option<&[String]>,
        admit: bool,
        reason: &str,
        seen_since_ms: i64,
    ) -> Result<Vec<WaiterRecord>, StoreError> {
        let state = if admit {
            WaiterState::Admitted
        } else {
            WaiterState::Rejected
        };
        let mut sql = String::from(
            "UPDATE waiting SET state = $2, reason = $3 WHERE meeting_id = $1 \
             AND state = 'waiting' AND seen_at_ms >= $4",
        );
        if let Some(waiter_ids) = waiter_ids {
            if waiter_ids.is_empty() {
                return Ok(Vec::new());
            }
            let placeholders: Vec<String> = (0..waiter_ids.len())
                .map(|i| format!("${}", i + 5))
                .collect();
            sql.push_str(&format!(" AND id IN ({})", placeholders.join(", ")));
        }
        sql.push_str(&format!(" RETURNING {WAITER_COLUMNS}"));
        let mut query = sqlx::query(audited(sql))
            .bind(id)
            .bind(state.as_str())
            .bind(reason)
            .bind(seen_since_ms);
        for waiter in waiter_ids.unwrap_or_default() {
            query = query.bind(waiter);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut decided = rows
            .iter()
            .map(waiter_from)
            .collect::<Result<Vec<_>, _>>()?;
        decided.sort_by(|a, b| (a.asked_at_ms, &a.waiter.id).cmp(&(b.asked_at_ms, &b.waiter.id)));
        Ok(decided)
    }

    /// Adds `actions` to the record.
    pub async fn record_host_actions(&self, actions: &[HostActionEntry]) -> Result<(), StoreError> {
        if actions.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for action in actions {
            sqlx::query(
                "INSERT INTO host_actions (id, meeting_id, at_ms, by_identity, by_display_name, \
                 action, target_identity, target_display_name, detail, via) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
                 WHERE EXISTS (SELECT 1 FROM meetings WHERE id = $2)",
            )
            .bind(crate::auth::random_hex(8))
            .bind(&action.meeting_id)
            .bind(action.at_ms)
            .bind(&action.by_identity)
            .bind(&action.by_display_name)
            .bind(&action.action)
            .bind(&action.target_identity)
            .bind(&action.target_display_name)
            .bind(&action.detail)
            .bind(&action.via)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Meeting `id`'s host actions before `before_ms`, newest first, at most `limit`.
    pub async fn host_actions(
        &self,
        id: &str,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<HostActionEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, meeting_id, by_identity, by_display_name, action, target_identity, \
             target_display_name, detail, via FROM host_actions \
             WHERE meeting_id = $1 AND at_ms < $2 ORDER BY at_ms DESC, id DESC LIMIT $3",
        )
        .bind(id)
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| action_from(row).map_err(StoreError::from))
            .collect()
    }

    /// Queues a host action from the API (`action`: an encoded request, base64) for relay
    /// `relay_id`; returns the command's id.
    pub async fn queue_command(
        &self,
        relay_id: &str,
        meeting_id: &str,
        action: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let id = format!("c-{}", crate::auth::random_hex(8));
        sqlx::query(
            "INSERT INTO relay_commands (id, relay_id, meeting_id, action, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(relay_id)
        .bind(meeting_id)
        .bind(action)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Forgets `relay_id`'s commands in `done` and those older than `expired_before_ms`, then
    /// returns the rest: `(id, action)`, oldest first. Reads only, unless there is something
    /// to forget (every heartbeat asks).
    pub async fn relay_commands(
        &self,
        relay_id: &str,
        done: &[String],
        expired_before_ms: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, action, created_at_ms FROM relay_commands WHERE relay_id = $1 \
             ORDER BY created_at_ms, id",
        )
        .bind(relay_id)
        .fetch_all(self.pool())
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        let mut forget: Vec<String> = done.to_vec();
        for row in &rows {
            let id: String = get(row, "id")?;
            let created: i64 = get(row, "created_at_ms")?;
            if created < expired_before_ms {
                forget.push(id);
            } else if !done.contains(&id) {
                pending.push((id, get(row, "action")?));
            }
        }
        if !forget.is_empty() {
            let mut tx = self.pool().begin().await?;
            for id in &forget {
                sqlx::query("DELETE FROM relay_commands WHERE relay_id = $1 AND id = $2")
                    .bind(relay_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(pending)
    }
}
