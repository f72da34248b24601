//! Meetings, their allow-lists, and seats (the participant limit at Join).

use sqlx::any::AnyRow;

use super::relays::{MeetingHost, RelayRecord};
use super::seat::SeatRequest;
use super::{audited, flag, get, unique_violation, Store, StoreError};

/// Who may join a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone signed in (and guests where allowed).
    Public,
    /// Owner, admins and the allow-list.
    Private,
    /// Whoever knows the password.
    Password,
}

impl Access {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Private => "private",
            Access::Password => "password",
        }
    }

    fn parse(value: &str) -> Access {
        match value {
            "private" => Access::Private,
            "password" => Access::Password,
            _ => Access::Public,
        }
    }
}

/// Who waits to be let in before joining a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitingRoom {
    /// Guests of private meetings wait; nobody waits in other meetings.
    #[default]
    Default,
    /// Nobody waits.
    Off,
    /// Guests wait.
    Guests,
    /// Everyone but hosts waits.
    Everyone,
}

impl WaitingRoom {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitingRoom::Default => "default",
            WaitingRoom::Off => "off",
            WaitingRoom::Guests => "guests",
            WaitingRoom::Everyone => "everyone",
        }
    }

    fn parse(value: &str) -> WaitingRoom {
        match value {
            "off" => WaitingRoom::Off,
            "guests" => WaitingRoom::Guests,
            "everyone" => WaitingRoom::Everyone,
            _ => WaitingRoom::Default,
        }
    }
}

/// A stored meeting with what relays report of it.
#[derive(Debug, Clone)]
pub struct MeetingRecord {
    /// Meeting id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Owner's username.
    pub owner: String,
    /// Access policy.
    pub access: Access,
    /// Argon2id hash of the meeting password.
    pub password_hash: Option<String>,
    /// Guests (display name only) may join.
    pub guests_allowed: bool,
    /// Participant limit.
    pub max_participants: u32,
    /// Clients must encrypt end to end.
    pub e2ee_required: bool,
    /// The relay new participants go to.
    pub relay_id: Option<String>,
    /// Creation time (ms).
    pub created_at_ms: i64,
    /// When it ended (ms).
    pub ended_at_ms: Option<i64>,
    /// Private meetings: who may join.
    pub allowed_users: Vec<String>,
    /// Users the meeting names as hosts besides its owner.
    pub hosts: Vec<String>,
    /// Who waits to be let in.
    pub waiting_room: WaitingRoom,
    /// Nobody new gets in.
    pub locked: bool,
}

/// A meeting to create.
#[derive(Debug, Clone)]
pub struct NewMeeting {
    /// Meeting id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Owner's username.
    pub owner: String,
    /// Access policy.
    pub access: Access,
    /// Argon2id hash of the password (password access).
    pub password_hash: Option<String>,
    /// Guests may join.
    pub guests_allowed: bool,
    /// Participant limit.
    pub max_participants: u32,
    /// End-to-end encryption required.
    pub e2ee_required: bool,
    /// Allow-list.
    pub allowed_users: Vec<String>,
    /// Hosts besides the owner.
    pub hosts: Vec<String>,
    /// Who waits to be let in.
    pub waiting_room: WaitingRoom,
    /// Created locked.
    pub locked: bool,
}

/// Changes to a meeting; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct MeetingUpdate {
    /// New title.
    pub title: Option<String>,
    /// New access policy.
    pub access: Option<Access>,
    /// New allow-list.
    pub allowed_users: Option<Vec<String>>,
    /// New list of hosts besides the owner.
    pub hosts: Option<Vec<String>>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// Guests allowed.
    pub guests_allowed: Option<bool>,
    /// Participant limit.
    pub max_participants: Option<u32>,
    /// End-to-end encryption required.
    pub e2ee_required: Option<bool>,
    /// Who waits to be let in.
    pub waiting_room: Option<WaitingRoom>,
    /// Locked or not.
    pub locked: Option<bool>,
}

/// A meeting's state for list filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Not ended, nobody connected.
    Open,
    /// Someone connected.
    Live,
    /// Ended.
    Ended,
}

/// Which meetings a list returns.
#[derive(Debug, Clone, Default)]
pub struct MeetingFilter {
    /// Only this owner's.
    pub owner: Option<String>,
    /// Only in this state.
    pub state: Option<StateFilter>,
    /// Only those this user may see (`None`: all, for admins).
    pub visible_to: Option<String>,
    /// Ids after this one.
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: u32,
    /// Relays heard from since then count as live (ms).
    pub fresh_since_ms: i64,
}

const MEETING_COLUMNS: &str = "id, title, owner, access, password_hash, guests_allowed, \
     max_participants, e2ee_required, relay_id, created_at_ms, ended_at_ms, waiting_room, locked";

fn meeting_from(row: &AnyRow) -> Result<MeetingRecord, sqlx::Error> {
    let access: String = get(row, "access")?;
    let max: i64 = get(row, "max_participants")?;
    Ok(MeetingRecord {
        id: get(row, "id")?,
        title: get(row, "title")?,
        owner: get(row, "owner")?,
        access: Access::parse(&access),
        password_hash: get(row, "password_hash")?,
        guests_allowed: flag(row, "guests_allowed")?,
        max_participants: u32::try_from(max).unwrap_or(u32::MAX),
        e2ee_required: flag(row, "e2ee_required")?,
        relay_id: get(row, "relay_id")?,
        created_at_ms: get(row, "created_at_ms")?,
        ended_at_ms: get(row, "ended_at_ms")?,
        allowed_users: Vec::new(),
        hosts: Vec::new(),
        waiting_room: WaitingRoom::parse(&get::<String>(row, "waiting_room")?),
        locked: flag(row, "locked")?,
    })
}

/// Participants of meeting `m` on relays heard from since `$fresh`.
const LIVE_COUNT: &str = "(SELECT COUNT(*) FROM live_participants lp \
     JOIN relays r ON r.relay_id = lp.relay_id \
     WHERE lp.meeting_id = m.id AND r.last_heartbeat_ms >= {fresh})";

/// Adds `users` to meeting `id`'s list in `table` (`meeting_allowed_users`, `meeting_hosts`).
async fn insert_usernames(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &'static str,
    id: &str,
    users: &[String],
) -> Result<(), StoreError> {
    for user in users {
        sqlx::query(audited(format!(
            "INSERT INTO {table} (meeting_id, username) VALUES ($1, $2)"
        )))
        .bind(id)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Creates a meeting; `AlreadyExists` when the id is taken.
    pub async fn create_meeting(
        &self,
        meeting: &NewMeeting,
        now_ms: i64,
    ) -> Result<MeetingRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO meetings (id, title, owner, access, password_hash, guests_allowed, \
             max_participants, e2ee_required, relay_id, created_at_ms, ended_at_ms, \
             waiting_room, locked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, $10, $11)",
        )
        .bind(&meeting.id)
        .bind(&meeting.title)
        .bind(&meeting.owner)
        .bind(meeting.access.as_str())
        .bind(meeting.password_hash.clone())
        .bind(i64::from(meeting.guests_allowed))
        .bind(i64::from(meeting.max_participants))
        .bind(i64::from(meeting.e2ee_required))
        .bind(now_ms)
        .bind(meeting.waiting_room.as_str())
        .bind(i64::from(meeting.locked))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::AlreadyExists(format!("meeting {}", meeting.id))
            } else {
                e.into()
            }
        })?;
        insert_usernames(
            &mut tx,
            "meeting_allowed_users",
            &meeting.id,
            &meeting.allowed_users,
        )
        .await?;
        insert_usernames(&mut tx, "meeting_hosts", &meeting.id, &meeting.hosts).await?;
        tx.commit().await?;
        self.meeting(&meeting.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("meeting {}", meeting.id)))
    }

    /// The meeting `id` with its allow-list.
    pub async fn meeting(&self, id: &str) -> Result<Option<MeetingRecord>, StoreError> {
        self.meeting_with(id, true).await
    }

    /// The meeting `id`; its allow-list only where it decides who may join (private).
    pub async fn meeting_for_join(&self, id: &str) -> Result<Option<MeetingRecord>, StoreError> {
        self.meeting_with(id, false).await
    }

    async fn meeting_with(
        &self,
        id: &str,
        always_allow_list: bool,
    ) -> Result<Option<MeetingRecord>, StoreError> {
        let row = sqlx::query(audited(format!(
            "SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut meeting = meeting_from(&row)?;
        if always_allow_list || meeting.access == Access::Private {
            meeting.allowed_users = self.allowed_users(id).await?;
        }
        if always_allow_list {
            meeting.hosts = self.hosts(id).await?;
        }
        Ok(Some(meeting))
    }

    async fn hosts(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.usernames("meeting_hosts", id).await
    }

    /// Whether meeting `id` names `username` as a host (besides its owner).
    pub async fn is_host(&self, id: &str, username: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT username FROM meeting_hosts WHERE meeting_id = $1 AND username = $2",
        )
        .bind(id)
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    async fn allowed_users(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.usernames("meeting_allowed_users", id).await
    }

    /// The usernames a per-meeting list (`table`: `meeting_allowed_users`, `meeting_hosts`)
    /// holds for meeting `id`, in order.
    async fn usernames(&self, table: &'static str, id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(audited(format!(
            "SELECT username FROM {table} WHERE meeting_id = $1 ORDER BY username"
        )))
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| get(row, "username").map_err(StoreError::from))
            .collect()
    }

    /// A page of meetings, ordered by id.
    pub async fn list_meetings(
        &self,
        filter: &MeetingFilter,
    ) -> Result<Vec<MeetingRecord>, StoreError> {
        // Parameters are numbered as they are added; user input is only ever bound.
        let mut sql = format!("SELECT {MEETING_COLUMNS} FROM meetings m WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(owner) = &filter.owner {
            let p = next(Bind::Text(owner.clone()), &mut binds);
            sql.push_str(&format!(" AND m.owner = {p}"));
        }
        if let Some(user) = &filter.visible_to {
            let p = next(Bind::Text(user.clone()), &mut binds);
            sql.push_str(&format!(
                " AND (m.owner = {p} OR m.access <> 'private' OR EXISTS (SELECT 1 FROM \
                 meeting_allowed_users a WHERE a.meeting_id = m.id AND a.username = {p}))"
            ));
        }
        if let Some(after) = &filter.after_id {
            let p = next(Bind::Text(after.clone()), &mut binds);
            sql.push_str(&format!(" AND m.id > {p}"));
        }
        match filter.state {
            None => {}
            Some(StateFilter::Ended) => sql.push_str(" AND m.ended_at_ms IS NOT NULL"),
            Some(state) => {
                let p = next(Bind::Int(filter.fresh_since_ms), &mut binds);
                let live = LIVE_COUNT.replace("{fresh}", &p);
                let op = if state == StateFilter::Live { ">" } else { "=" };
                sql.push_str(&format!(" AND m.ended_at_ms IS NULL AND {live} {op} 0"));
            }
        }
        let p = next(Bind::Int(i64::from(filter.limit)), &mut binds);
        sql.push_str(&format!(" ORDER BY m.id LIMIT {p}"));
        let mut query = sqlx::query(audited(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(n) => query.bind(n),
            };
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut meetings = rows
            .iter()
            .map(meeting_from)
            .collect::<Result<Vec<_>, _>>()?;
        for meeting in &mut meetings {
            meeting.allowed_users = self.allowed_users(&meeting.id).await?;
            meeting.hosts = self.hosts(&meeting.id).await?;
        }
        Ok(meetings)
    }

    /// Applies `update`; `NotFound` when there is no such meeting.
    pub async fn update_meeting(
        &self,
        id: &str,
        update: &MeetingUpdate,
    ) -> Result<MeetingRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE meetings SET title = COALESCE($2, title), access = COALESCE($3, access), \
             password_hash = COALESCE($4, password_hash), \
             guests_allowed = COALESCE($5, guests_allowed), \
             max_participants = COALESCE($6, max_participants), \
             e2ee_required = COALESCE($7, e2ee_required), \
             waiting_room = COALESCE($8, waiting_room), locked = COALESCE($9, locked) \
             WHERE id = $1",
        )
        .bind(id)
        .bind(update.title.clone())
        .bind(update.access.map(|a| a.as_str().to_owned()))
        .bind(update.password_hash.clone())
        .bind(update.guests_allowed.map(i64::from))
        .bind(update.max_participants.map(i64::from))
        .bind(update.e2ee_required.map(i64::from))
        .bind(update.waiting_room.map(|w| w.as_str().to_owned()))
        .bind(update.locked.map(i64::from))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("meeting {id}")));
        }
        for (table, users) in [
            ("meeting_allowed_users", &update.allowed_users),
            ("meeting_hosts", &update.hosts),
        ] {
            if let Some(users) = users {
                sqlx::query(audited(format!(
                    "DELETE FROM {table} WHERE meeting_id = $1"
                )))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                insert_usernames(&mut tx, table, id, users).await?;
            }
        }
        tx.commit().await?;
        self.meeting(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("meeting {id}")))
    }

    /// Ends a meeting (idempotent: the first end time stays) and frees its seats.
    pub async fn end_meeting(&self, id: &str, now_ms: i64) -> Result<MeetingRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE meetings SET ended_at_ms = COALESCE(ended_at_ms, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("meeting {id}")));
        }
        sqlx::query("DELETE FROM seats WHERE meeting_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.meeting(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("meeting {id}")))
    }

    /// Removes a meeting.
    pub async fn delete_meeting(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM meetings WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("meeting {id}")));
        }
        Ok(())
    }

    /// Takes a seat for `request.identity` and picks its relay with `place`, atomically:
    /// concurrent joins never hand out more seats than the meeting has.
    pub async fn reserve_seat<F>(
        &self,
        request: &SeatRequest<'_>,
        place: F,
    ) -> Result<(MeetingRecord, RelayRecord), StoreError>
    where
        F: FnOnce(&MeetingRecord, &[RelayRecord], &[MeetingHost]) -> Option<String>,
    {
        let id = request.meeting_id;
        let _turn = self.write_turn().await;
        let mut tx = self.relaxed_pool().begin().await?;
        // Writing first takes the row lock on PostgreSQL and the write lock on SQLite, so
        // the count below cannot change under us.
        let row = sqlx::query(audited(format!(
            "UPDATE meetings SET relay_id = relay_id WHERE id = $1 RETURNING {MEETING_COLUMNS}"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("meeting {id}")))?;
        let meeting = meeting_from(&row)?;
        if meeting.ended_at_ms.is_some() {
            return Err(StoreError::Ended(id.to_owned()));
        }
        // Runs after the lock above, so the seat count is current (one query: every
        // round trip counts at a thousand joins a second).
        let view = self.placement_view(&mut tx, request).await?;
        if view.seats_taken >= i64::from(meeting.max_participants) {
            return Err(StoreError::Full(id.to_owned()));
        }
        let (relays, hosts) = (view.fresh, view.hosts);
        let relay_id = place(&meeting, &relays, &hosts).ok_or(StoreError::NoRelay)?;
        let relay = relays
            .into_iter()
            .find(|r| r.relay_id == relay_id)
            .ok_or(StoreError::NoRelay)?;
        sqlx::query(
            "INSERT INTO seats (meeting_id, identity, relay_id, issued_at_ms, connect_by_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (meeting_id, identity) DO UPDATE SET \
             relay_id = excluded.relay_id, issued_at_ms = excluded.issued_at_ms, \
             connect_by_ms = excluded.connect_by_ms",
        )
        .bind(id)
        .bind(request.identity)
        .bind(&relay.relay_id)
        .bind(request.now_ms)
        .bind(request.connect_by_ms)
        .execute(&mut *tx)
        .await?;
        if meeting.relay_id.as_deref() != Some(relay.relay_id.as_str()) {
            sqlx::query("UPDATE meetings SET relay_id = $2 WHERE id = $1")
                .bind(id)
                .bind(&relay.relay_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((meeting, relay))
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

/// Adds a parameter; returns its placeholder.
fn next(bind: Bind, binds: &mut Vec<Bind>) -> String {
    binds.push(bind);
    format!("${}", binds.len())
}
