//! Durable state: rooms and their participants in SQLite (default) or PostgreSQL.
//!
//! Only this module names sqlx. At run time the store is written, never read: the live state
//! is in the room tasks, and the store is read back once at start-up. Each method is one
//! transaction, so a crash leaves either the whole change or none of it.

use crate::grant::{GrantKey, KEY_LEN};
use crate::room::{Participant, ParticipantState, Room, RoomId, RoomOptions};
use base64::Engine;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::{mpsc, oneshot};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with that key already exists.
    #[error("already exists")]
    Conflict,
    /// The room a row belongs to does not exist (any more).
    #[error("room does not exist")]
    RoomMissing,
    /// The database URL names no supported backend.
    #[error("unsupported database URL '{0}': use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Which database the store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A handle on the database (cheap to clone).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    inserts: mpsc::Sender<InsertJob>,
    /// Tells the SQLite checkpointer to finish (SQLite only).
    stop_checkpoints: Option<std::sync::Arc<tokio::sync::watch::Sender<bool>>>,
}

/// How often the SQLite checkpointer moves the write-ahead log into the database file.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Participant inserts waiting for the group-commit writer. Senders: `insert_participant`
/// callers (API handlers). Receiver: the writer task. When full, callers wait.
pub const INSERT_QUEUE_CAPACITY: usize = 4096;

/// The most participant rows the writer puts in one statement.
pub const MAX_INSERT_BATCH: usize = 256;

#[derive(Debug)]
struct InsertJob {
    room: String,
    id: String,
    created_at: i64,
    body: String,
    done: oneshot::Sender<Result<(), StoreError>>,
}

fn map_write_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict;
        }
        if db.is_foreign_key_violation() {
            return StoreError::RoomMissing;
        }
    }
    StoreError::Database(e)
}

impl Store {
    /// Opens the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let options = AnyPoolOptions::new();
        let pool = match backend {
            // One connection: SQLite serialises writers anyway, and a second writer would
            // wait in SQLite's sleeping busy handler instead of the pool's fair queue.
            Backend::Sqlite => {
                options
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            // Checkpoints (and their fsync) run on their own connection, off
                            // the writer's path: see `checkpointer`.
                            conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => options.max_connections(8).connect(url).await?,
        };
        MIGRATOR.run(&pool).await?;
        let (inserts, queue) = mpsc::channel(INSERT_QUEUE_CAPACITY);
        tokio::spawn(insert_writer(pool.clone(), queue));
        let stop_checkpoints = match backend {
            Backend::Sqlite => {
                let conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await?;
                let (stop, stopped) = tokio::sync::watch::channel(false);
                tokio::spawn(checkpointer(conn, stopped));
                Some(std::sync::Arc::new(stop))
            }
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            backend,
            inserts,
            stop_checkpoints,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every database connection.
    pub async fn close(&self) {
        if let Some(stop) = &self.stop_checkpoints {
            let _ = stop.send(true);
        }
        self.pool.close().await;
    }

    /// The key that signs join grants: created on first use, then kept, so grants issued
    /// before a restart stay valid after it.
    pub async fn grant_key(&self) -> Result<GrantKey, StoreError> {
        let fresh = base64::engine::general_purpose::STANDARD.encode(GrantKey::generate_secret());
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('grant_key', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(fresh).execute(&self.pool).await?;
        let row = sqlx::query("SELECT value FROM settings WHERE name = 'grant_key'")
            .fetch_one(&self.pool)
            .await?;
        let text: String = row.try_get("value")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| StoreError::Corrupt(format!("grant key: {e}")))?;
        if bytes.len() != KEY_LEN {
            return Err(StoreError::Corrupt("grant key has the wrong length".into()));
        }
        Ok(GrantKey::from_bytes(&bytes))
    }

    /// Records a new room. `Conflict` when the id is taken.
    pub async fn insert_room(&self, room: &Room) -> Result<(), StoreError> {
        let options = serde_json::to_string(room.options()).expect("options serialise");
        sqlx::query("INSERT INTO rooms (id, created_at, options) VALUES ($1, $2, $3)")
            .bind(room.id().as_str())
            .bind(room.created_at())
            .bind(options)
            .execute(&self.pool)
            .await
            .map_err(map_write_error)?;
        Ok(())
    }

    /// Forgets a room and all its participants; false when it was not stored.
    pub async fn delete_room(&self, id: &RoomId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Explicit, so the result does not depend on foreign-key enforcement being on.
        sqlx::query("DELETE FROM participants WHERE room_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a participant of a stored room. `RoomMissing` when the room is gone.
    ///
    /// Concurrent calls are committed together by one writer (group commit): under load one
    /// statement carries many rows, and each caller still learns its own row's fate.
    pub async fn insert_participant(
        &self,
        room: &RoomId,
        participant: &Participant,
    ) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        let job = InsertJob {
            room: room.as_str().to_owned(),
            id: participant.id.as_str().to_owned(),
            created_at: participant.created_at,
            body: serde_json::to_string(participant).expect("participant serialises"),
            done,
        };
        let closed = || StoreError::Database(sqlx::Error::PoolClosed);
        self.inserts.send(job).await.map_err(|_| closed())?;
        result.await.map_err(|_| closed())?
    }

    /// Rewrites a stored participant.
    pub async fn update_participant(
        &self,
        room: &RoomId,
        participant: &Participant,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(participant).expect("participant serialises");
        sqlx::query("UPDATE participants SET body = $1 WHERE room_id = $2 AND id = $3")
            .bind(body)
            .bind(room.as_str())
            .bind(participant.id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets one participant.
    pub async fn delete_participant(&self, room: &RoomId, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM participants WHERE room_id = $1 AND id = $2")
            .bind(room.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every stored room with its pending participants, as they were last written.
    /// Participants that were active when the server stopped are not returned: their media
    /// and signaling connections died with the process, and their grant was used.
    pub async fn load_rooms(&self) -> Result<Vec<Room>, StoreError> {
        let rows = sqlx::query("SELECT id, created_at, options FROM rooms ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        let mut rooms = Vec::with_capacity(rows.len());
        let mut index = std::collections::HashMap::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let created_at: i64 = row.try_get("created_at")?;
            let options: RoomOptions = decode(&row, "options")?;
            index.insert(id.clone(), rooms.len());
            rooms.push(Room::new(RoomId::new(id), created_at, options));
        }
        let rows = sqlx::query("SELECT room_id, body FROM participants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        let mut gone = Vec::new();
        for row in rows {
            let room_id: String = row.try_get("room_id")?;
            let participant: Participant = decode(&row, "body")?;
            if participant.state != ParticipantState::Pending {
                gone.push((room_id, participant.id));
                continue;
            }
            if let Some(&i) = index.get(&room_id) {
                rooms[i]
                    .grant(participant)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            }
        }
        for (room, id) in gone {
            self.delete_participant(&RoomId::new(room), id.as_str())
                .await?;
        }
        Ok(rooms)
    }
}

/// Moves the SQLite write-ahead log into the database file every `CHECKPOINT_INTERVAL`, on
/// a connection of its own. A passive checkpoint never blocks the writer, so the fsync it
/// costs stays off the path of API calls; a last one truncates the log when the store closes.
async fn checkpointer(mut conn: sqlx::AnyConnection, mut stop: tokio::sync::watch::Receiver<bool>) {
    use sqlx::Connection;
    let mut ticker = tokio::time::interval(CHECKPOINT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                    tracing::warn!(error = %e, "SQLite checkpoint failed");
                }
            }
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
        }
    }
    let _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
    let _ = conn.close().await;
}

/// The group-commit writer: takes whatever inserts are queued, writes them in one
/// statement, and falls back to one statement per row when that fails (a room that closed
/// meanwhile, a duplicate id), so each caller gets its own answer.
async fn insert_writer(pool: AnyPool, mut queue: mpsc::Receiver<InsertJob>) {
    let mut batch = Vec::with_capacity(MAX_INSERT_BATCH);
    while queue.recv_many(&mut batch, MAX_INSERT_BATCH).await > 0 {
        if batch.len() > 1 && insert_many(&pool, &batch).await {
            for job in batch.drain(..) {
                let _ = job.done.send(Ok(()));
            }
            continue;
        }
        for job in batch.drain(..) {
            let result = insert_one(&pool, &job).await;
            let _ = job.done.send(result);
        }
    }
}

/// Inserts every row in one statement; false when any row fails (nothing is written then).
async fn insert_many(pool: &AnyPool, batch: &[InsertJob]) -> bool {
    let mut sql = String::from("INSERT INTO participants (room_id, id, created_at, body) VALUES ");
    for i in 0..batch.len() {
        let n = i * 4;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for job in batch {
        query = query
            .bind(job.room.as_str())
            .bind(job.id.as_str())
            .bind(job.created_at)
            .bind(job.body.as_str());
    }
    matches!(query.execute(pool).await, Ok(done) if done.rows_affected() == batch.len() as u64)
}

async fn insert_one(pool: &AnyPool, job: &InsertJob) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO participants (room_id, id, created_at, body) \
         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM rooms WHERE id = $1)",
    )
    .bind(job.room.as_str())
    .bind(job.id.as_str())
    .bind(job.created_at)
    .bind(job.body.as_str())
    .execute(pool)
    .await
    .map_err(map_write_error)?;
    match done.rows_affected() {
        0 => Err(StoreError::RoomMissing),
        _ => Ok(()),
    }
}

fn decode<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}
