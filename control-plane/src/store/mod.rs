//! Persistence on `sqlx`'s `Any` driver: one set of portable SQL for SQLite (the embedded
//! default) and PostgreSQL (production). No database is needed at compile time.

mod hosts;
mod identities;
mod keys;
mod meetings;
mod relays;
mod seat;
mod users;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

pub use hosts::{HostActionEntry, NewWaiter, WaiterRecord, WaiterState};
pub use identities::{Linked, PendingSignIn};
pub use keys::SigningKeyRecord;
pub use meetings::{
    Access, MeetingFilter, MeetingRecord, MeetingUpdate, NewMeeting, StateFilter, WaitingRoom,
};
pub use relays::{LiveParticipantRecord, MeetingHost, RelayLoad, RelayRecord};
pub use seat::SeatRequest;
pub use users::{ApiKeyRecord, SessionRecord, UserRecord};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The meeting has no free seat.
    #[error("meeting {0} is full")]
    Full(String),
    /// The meeting has ended.
    #[error("meeting {0} has ended")]
    Ended(String),
    /// No relay can take the meeting.
    #[error("no relay is available")]
    NoRelay,
    /// The database URL is not one we support.
    #[error("unsupported database URL (use sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The control plane's database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Connections for data rebuilt within seconds anyway (seats, heartbeats): on
    /// PostgreSQL their commits do not wait for the disk (a crash may lose the last few,
    /// never corrupting anything); on SQLite one connection, the queued writer's.
    relaxed_pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time and its busy handler waits in sleeps of
    /// milliseconds; queueing writers here instead keeps write latency flat.
    sqlite_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Most connections to an SQLite file.
const SQLITE_MAX_CONNECTIONS: u32 = 4;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        let connections = match backend {
            // Each SQLite connection is a thread with its own page cache, which every
            // write elsewhere invalidates; a few connections serve best.
            Backend::Sqlite => max_connections.clamp(1, SQLITE_MAX_CONNECTIONS),
            Backend::Postgres => max_connections.max(1),
        };
        let options = AnyPoolOptions::new().max_connections(connections);
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; NORMAL sync is durable
                    // across process crashes, which is what a control plane needs.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    // Checkpoints (which fsync) run from a background task instead of
                    // inside whichever commit crosses the threshold.
                    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(url).await?;
        MIGRATOR.run(&pool).await?;
        let relaxed_pool = match backend {
            // Seat and heartbeat writes are queued in-process anyway (`sqlite_writer`): one
            // connection for them keeps its page cache warm.
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_periodically(pool.clone()));
        }
        Ok(Store {
            pool,
            relaxed_pool,
            backend,
            sqlite_writer: Default::default(),
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.relaxed_pool.close().await;
        self.pool.close().await;
    }

    /// Each pool's connections now: (name, open, idle, most allowed).
    pub fn pool_stats(&self) -> [(&'static str, u32, usize, u32); 2] {
        let stats = |name, pool: &AnyPool| {
            (
                name,
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        };
        [
            stats("main", &self.pool),
            stats("relaxed", &self.relaxed_pool),
        ]
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for seats and heartbeats (see `relaxed_pool`).
    pub(crate) fn relaxed_pool(&self) -> &AnyPool {
        &self.relaxed_pool
    }

    /// Held around write transactions: on SQLite a queue of writers, elsewhere nothing.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.sqlite_writer.lock().await),
            Backend::Postgres => None,
        }
    }
}

/// Moves the SQLite write-ahead log into the database file every second, without
/// blocking writers (PASSIVE); stops when the pool closes.
async fn checkpoint_periodically(pool: AnyPool) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(%error, "WAL checkpoint");
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The URL without its password, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Marks SQL assembled at run time as reviewed: it is built only from constants and
/// numbered placeholders, never from input (input is always bound).
fn audited(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

fn unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// A 0/1 flag column.
fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    get::<i64>(row, column).map(|v| v != 0)
}

fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Row::try_get(row, column)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }
}
