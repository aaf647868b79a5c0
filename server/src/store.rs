//! Durable state: rooms, their participants and the outbox of events, in SQLite (default) or
//! PostgreSQL.
//!
//! Only this module names sqlx. At run time the store is written, never read, except the
//! outbox by its consumers: the live state is in the room tasks, and the store is read back
//! once at start-up. Every change goes through one writer, the journal, in the order it was
//! enqueued: a job (a list of [`Write`]s, say a participant leaving and the events that tell
//! of it) is one transaction, so a crash leaves either the whole change or none of it, and
//! the events of a room reach the outbox in the order the room task produced them. Jobs that
//! queue up meanwhile are committed together (group commit).

use crate::grant::{GrantKey, KEY_LEN};
use crate::room::{Participant, ParticipantState, Room, RoomId, RoomOptions};
use base64::Engine;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::{mpsc, oneshot};

mod cluster;
pub use cluster::{NodeRow, NodeState};

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
    journal: mpsc::UnboundedSender<Job>,
    /// The highest outbox sequence number committed so far.
    committed: tokio::sync::watch::Receiver<i64>,
    /// Tells the SQLite checkpointer to finish (SQLite only).
    stop_checkpoints: Option<std::sync::Arc<tokio::sync::watch::Sender<bool>>>,
    /// The journal's queue depth and commit latency, for the metrics.
    journal_metrics: JournalMetrics,
    /// This node's name in a cluster; empty alone. Rooms it inserts are owned by it and
    /// outbox rows it writes are delivered by it; it loads and delivers only those.
    node: std::sync::Arc<str>,
}

/// The journal's metrics (Prometheus types: atomic, cheap to clone).
#[derive(Clone)]
pub struct JournalMetrics {
    /// Jobs waiting for the journal.
    pub queued: prometheus::IntGauge,
    /// Seconds each commit (one transaction) took.
    pub commit_seconds: prometheus::Histogram,
}

impl std::fmt::Debug for JournalMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalMetrics")
    }
}

impl JournalMetrics {
    fn new() -> Self {
        Self {
            queued: prometheus::IntGauge::new(
                "camerata_journal_queue_depth",
                "Store jobs waiting for the journal",
            )
            .expect("a valid gauge"),
            commit_seconds: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "camerata_journal_commit_seconds",
                    "Seconds each journal transaction took to commit",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
            )
            .expect("a valid histogram"),
        }
    }
}

/// How often the SQLite checkpointer moves the write-ahead log into the database file.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The most jobs the journal commits in one transaction.
pub const MAX_BATCH: usize = 256;

/// One change to durable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Records a room; `Conflict` when its id is taken.
    InsertRoom {
        /// The room id.
        id: String,
        /// Creation time, ms.
        created_at: i64,
        /// The options, as JSON.
        options: String,
    },
    /// Replaces a room's options.
    UpdateRoom {
        /// The room id.
        id: String,
        /// The options, as JSON.
        options: String,
    },
    /// Forgets a room and its participants.
    DeleteRoom {
        /// The room id.
        id: String,
    },
    /// Records a participant; `RoomMissing` when its room is gone.
    InsertParticipant {
        /// The room id.
        room: String,
        /// The participant id.
        id: String,
        /// Creation time, ms.
        created_at: i64,
        /// The participant, as JSON.
        body: String,
    },
    /// Rewrites a participant (nothing when it is gone).
    UpdateParticipant {
        /// The room id.
        room: String,
        /// The participant id.
        id: String,
        /// The participant, as JSON.
        body: String,
    },
    /// Forgets a participant.
    DeleteParticipant {
        /// The room id.
        room: String,
        /// The participant id.
        id: String,
    },
    /// Appends an event to the outbox.
    Event(Event),
    /// Takes over a dead node (cluster mode): when its lease ran out (by the database's
    /// clock) and no other node took it first, it is marked dead, its rooms become this
    /// node's and its undelivered outbox rows are renumbered after everything in the outbox,
    /// in their order, for this node to deliver. Nothing when another node took it or it
    /// renewed its lease.
    Claim {
        /// The dead node.
        dead: String,
    },
}

/// An event for the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unique id, sent to receivers so they can drop duplicates.
    pub id: String,
    /// The session it belongs to (deliveries are ordered per session).
    pub session: String,
    /// The event's name.
    pub name: String,
    /// The event, as JSON.
    pub body: String,
    /// When it happened, ms.
    pub created_at: i64,
    /// Whether the webhook is to deliver it.
    pub hook: bool,
    /// Whether the CDR file is to get it.
    pub cdr: bool,
}

/// An event read back from the outbox, with its place in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Position in the outbox: later events have higher numbers.
    pub seq: i64,
    /// The event.
    pub event: Event,
}

/// Who takes events out of the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumer {
    /// The webhook sender.
    Hook,
    /// The CDR file writer.
    Cdr,
}

impl Consumer {
    fn column(self) -> &'static str {
        match self {
            Consumer::Hook => "hook_pending",
            Consumer::Cdr => "cdr_pending",
        }
    }
}

/// A job the journal accepted; [`Durable::wait`] tells when it is committed.
#[derive(Debug)]
#[must_use = "a write is only known durable once waited for"]
pub struct Durable(oneshot::Receiver<Result<(), StoreError>>);

impl Durable {
    /// A job with nothing to write: already durable.
    pub fn ready() -> Self {
        let (done, result) = oneshot::channel();
        let _ = done.send(Ok(()));
        Durable(result)
    }

    /// Waits until the job is committed, or why it was not.
    pub async fn wait(self) -> Result<(), StoreError> {
        self.0
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::PoolClosed)))
    }
}

#[derive(Debug)]
struct Job {
    writes: Vec<Write>,
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
        Self::open_as(url, None).await
    }

    /// `open`, as the cluster node `node` (PostgreSQL) when one is named.
    pub async fn open_as(url: &str, node: Option<&str>) -> Result<Self, StoreError> {
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
        let node: std::sync::Arc<str> = node.unwrap_or("").into();
        if !node.is_empty() {
            if backend != Backend::Postgres {
                return Err(StoreError::UnsupportedUrl(format!(
                    "{url} (a cluster needs PostgreSQL)"
                )));
            }
            cluster::prepare_sequence(&pool).await?;
        }
        let last: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) AS last FROM outbox WHERE node = $1")
                .bind(&*node)
                .fetch_one(&pool)
                .await?
                .try_get("last")?;
        // Unbounded on purpose: room tasks enqueue their changes without waiting (a room task
        // never awaits the database), and each job's caller awaits it being stored, so what
        // waits here is only changes already applied, committed in groups as they come.
        let (journal, queue) = mpsc::unbounded_channel();
        let (committed_tx, committed) = tokio::sync::watch::channel(last);
        let journal_metrics = JournalMetrics::new();
        tokio::spawn(journal_writer(
            pool.clone(),
            node.clone(),
            queue,
            last,
            committed_tx,
            journal_metrics.clone(),
        ));
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
            journal,
            committed,
            stop_checkpoints,
            journal_metrics,
            node,
        })
    }

    /// This node's name in a cluster; `None` alone.
    pub fn node(&self) -> Option<&str> {
        (!self.node.is_empty()).then_some(&*self.node)
    }

    /// The journal's metrics.
    pub fn journal_metrics(&self) -> &JournalMetrics {
        &self.journal_metrics
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
        Ok(GrantKey::from_bytes(
            &self.secret_setting("grant_key").await?,
        ))
    }

    /// The random key named `name` in the settings: created on first use by whichever
    /// process asks first (every node of a cluster then reads the same), then kept.
    pub(crate) async fn secret_setting(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let fresh = base64::engine::general_purpose::STANDARD.encode(GrantKey::generate_secret());
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let text: String = row.try_get("value")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
        if bytes.len() != KEY_LEN {
            return Err(StoreError::Corrupt(format!("{name} has the wrong length")));
        }
        Ok(bytes)
    }

    /// Hands `writes` to the journal, to be committed as one transaction after everything
    /// enqueued before; never waits.
    pub fn enqueue(&self, writes: Vec<Write>) -> Durable {
        if writes.is_empty() {
            return Durable::ready();
        }
        let (done, result) = oneshot::channel();
        self.journal_metrics.queued.inc();
        if let Err(mpsc::error::SendError(job)) = self.journal.send(Job { writes, done }) {
            self.journal_metrics.queued.dec();
            let _ = job
                .done
                .send(Err(StoreError::Database(sqlx::Error::PoolClosed)));
        }
        Durable(result)
    }

    /// `enqueue`, then waits until the writes are committed.
    pub async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.enqueue(writes).wait().await
    }

    /// Records a new room. `Conflict` when the id is taken.
    pub async fn insert_room(&self, room: &Room) -> Result<(), StoreError> {
        self.write(vec![Write::insert_room(room)]).await
    }

    /// Forgets a room and all its participants.
    pub async fn delete_room(&self, id: &RoomId) -> Result<(), StoreError> {
        self.write(vec![Write::DeleteRoom {
            id: id.as_str().to_owned(),
        }])
        .await
    }

    /// Records a participant of a stored room. `RoomMissing` when the room is gone.
    pub async fn insert_participant(
        &self,
        room: &RoomId,
        participant: &Participant,
    ) -> Result<(), StoreError> {
        self.write(vec![Write::insert_participant(room, participant)])
            .await
    }

    /// Rewrites a stored participant.
    pub async fn update_participant(
        &self,
        room: &RoomId,
        participant: &Participant,
    ) -> Result<(), StoreError> {
        self.write(vec![Write::update_participant(room, participant)])
            .await
    }

    /// Forgets one participant.
    pub async fn delete_participant(&self, room: &RoomId, id: &str) -> Result<(), StoreError> {
        self.write(vec![Write::DeleteParticipant {
            room: room.as_str().to_owned(),
            id: id.to_owned(),
        }])
        .await
    }

    /// How many events `consumer` has not taken yet.
    pub async fn pending_count(&self, consumer: Consumer) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM outbox WHERE {} = 1 AND node = $1",
            consumer.column()
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&*self.node)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Up to `limit` events `consumer` has not taken yet, after `seq`, oldest first.
    pub async fn pending_events(
        &self,
        consumer: Consumer,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT seq, id, session, name, body, created_at, hook_pending, cdr_pending \
             FROM outbox WHERE {} = 1 AND seq > $1 AND node = $3 ORDER BY seq LIMIT $2",
            consumer.column()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .bind(&*self.node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    seq: row.try_get("seq")?,
                    event: Event {
                        id: row.try_get("id")?,
                        session: row.try_get("session")?,
                        name: row.try_get("name")?,
                        body: row.try_get("body")?,
                        created_at: row.try_get("created_at")?,
                        hook: row.try_get::<i64, _>("hook_pending")? == 1,
                        cdr: row.try_get::<i64, _>("cdr_pending")? == 1,
                    },
                })
            })
            .collect()
    }

    /// Marks events as taken by `consumer`; rows no consumer still wants are deleted.
    pub async fn consumed(&self, consumer: Consumer, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let list = seqs
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE outbox SET {} = 0 WHERE seq IN ({list})",
            consumer.column()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "DELETE FROM outbox WHERE seq IN ({list}) AND hook_pending = 0 AND cdr_pending = 0"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The highest outbox sequence number committed so far; changes as events are written.
    pub fn committed_events(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.clone()
    }

    /// Every stored room this node owns (every room, alone) with its pending participants, as
    /// they were last written, and the
    /// participants that were active when the server stopped, with their room id. Those are
    /// not in the rooms: their media and signaling connections died with the process, and
    /// their grant was used. The caller forgets them (see `Write::DeleteParticipant`).
    pub async fn load_rooms(&self) -> Result<(Vec<Room>, Vec<(RoomId, Participant)>), StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, options FROM rooms WHERE owner = $1 ORDER BY created_at",
        )
        .bind(&*self.node)
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
        let rows = sqlx::query(
            "SELECT p.room_id, p.body FROM participants p JOIN rooms r ON r.id = p.room_id \
             WHERE r.owner = $1 ORDER BY p.created_at, p.id",
        )
        .bind(&*self.node)
        .fetch_all(&self.pool)
        .await?;
        let mut gone = Vec::new();
        for row in rows {
            let room_id: String = row.try_get("room_id")?;
            let participant: Participant = decode(&row, "body")?;
            if participant.state != ParticipantState::Pending {
                gone.push((RoomId::new(room_id), participant));
                continue;
            }
            if let Some(&i) = index.get(&room_id) {
                rooms[i]
                    .grant(participant)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            }
        }
        Ok((rooms, gone))
    }

    /// The rooms this node owns that are not in `live` yet (rooms it took over from a dead
    /// node), with the participants that were in them, as [`Store::load_rooms`].
    pub async fn load_rooms_except(
        &self,
        live: &std::collections::HashSet<String>,
    ) -> Result<(Vec<Room>, Vec<(RoomId, Participant)>), StoreError> {
        let (mut rooms, mut gone) = self.load_rooms().await?;
        rooms.retain(|r| !live.contains(r.id().as_str()));
        gone.retain(|(r, _)| !live.contains(r.as_str()));
        Ok((rooms, gone))
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

impl Write {
    /// Records `room`.
    pub fn insert_room(room: &Room) -> Self {
        Write::InsertRoom {
            id: room.id().as_str().to_owned(),
            created_at: room.created_at(),
            options: serde_json::to_string(room.options()).expect("options serialise"),
        }
    }

    /// Records `room`'s current options.
    pub fn update_room(room: &Room) -> Self {
        Write::UpdateRoom {
            id: room.id().as_str().to_owned(),
            options: serde_json::to_string(room.options()).expect("options serialise"),
        }
    }

    /// Records `participant` of `room`.
    pub fn insert_participant(room: &RoomId, participant: &Participant) -> Self {
        Write::InsertParticipant {
            room: room.as_str().to_owned(),
            id: participant.id.as_str().to_owned(),
            created_at: participant.created_at,
            body: serde_json::to_string(participant).expect("participant serialises"),
        }
    }

    /// Rewrites `participant` of `room`.
    pub fn update_participant(room: &RoomId, participant: &Participant) -> Self {
        Write::UpdateParticipant {
            room: room.as_str().to_owned(),
            id: participant.id.as_str().to_owned(),
            body: serde_json::to_string(participant).expect("participant serialises"),
        }
    }
}

/// The journal: takes whatever jobs are queued and commits them in one transaction, in
/// queue order; when that fails (a room that closed meanwhile, a duplicate id), commits them
/// one transaction each, so each caller gets its own answer. Tells `committed` the last
/// outbox number written.
async fn journal_writer(
    pool: AnyPool,
    node: std::sync::Arc<str>,
    mut queue: mpsc::UnboundedReceiver<Job>,
    mut last_seq: i64,
    committed: tokio::sync::watch::Sender<i64>,
    metrics: JournalMetrics,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let timed = |result, started: std::time::Instant| {
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    };
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics.queued.sub(batch.len() as i64);
        let start = last_seq;
        if batch.len() > 1 {
            let writes: Vec<&Write> = batch.iter().flat_map(|j| &j.writes).collect();
            let started = std::time::Instant::now();
            match timed(apply(&pool, &node, &writes, &mut last_seq).await, started) {
                Ok(()) => {
                    for job in batch.drain(..) {
                        let _ = job.done.send(Ok(()));
                    }
                    if last_seq != start {
                        let _ = committed.send(last_seq);
                    }
                    continue;
                }
                Err(_) => last_seq = start,
            }
        }
        for job in batch.drain(..) {
            let before = last_seq;
            let writes: Vec<&Write> = job.writes.iter().collect();
            let started = std::time::Instant::now();
            let result = timed(apply(&pool, &node, &writes, &mut last_seq).await, started);
            if result.is_err() {
                last_seq = before;
            }
            let _ = job.done.send(result);
        }
        if last_seq != start {
            let _ = committed.send(last_seq);
        }
    }
}

/// Applies `writes` in one transaction; events take the numbers after `last_seq`. A run of
/// participant inserts is one multi-row statement.
async fn apply(
    pool: &AnyPool,
    node: &str,
    writes: &[&Write],
    last_seq: &mut i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let mut i = 0;
    while i < writes.len() {
        let run = writes[i..]
            .iter()
            .take(MAX_BATCH)
            .take_while(|w| matches!(w, Write::InsertParticipant { .. }))
            .count();
        if run > 1 {
            insert_participants(&mut tx, &writes[i..i + run]).await?;
            i += run;
            continue;
        }
        let write = writes[i];
        i += 1;
        match write {
            Write::InsertRoom {
                id,
                created_at,
                options,
            } => {
                sqlx::query(
                    "INSERT INTO rooms (id, created_at, options, owner) VALUES ($1, $2, $3, $4)",
                )
                .bind(id.as_str())
                .bind(*created_at)
                .bind(options.as_str())
                .bind(node)
                .execute(&mut *tx)
                .await
                .map_err(map_write_error)?;
            }
            Write::UpdateRoom { id, options } => {
                sqlx::query("UPDATE rooms SET options = $1 WHERE id = $2")
                    .bind(options.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_write_error)?;
            }
            Write::DeleteRoom { id } => {
                // Explicit, so the result does not depend on foreign-key enforcement.
                sqlx::query("DELETE FROM participants WHERE room_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM rooms WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Write::InsertParticipant {
                room,
                id,
                created_at,
                body,
            } => {
                let done = sqlx::query(
                    "INSERT INTO participants (room_id, id, created_at, body) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM rooms WHERE id = $1)",
                )
                .bind(room.as_str())
                .bind(id.as_str())
                .bind(*created_at)
                .bind(body.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_write_error)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::RoomMissing);
                }
            }
            Write::UpdateParticipant { room, id, body } => {
                sqlx::query("UPDATE participants SET body = $1 WHERE room_id = $2 AND id = $3")
                    .bind(body.as_str())
                    .bind(room.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Write::DeleteParticipant { room, id } => {
                sqlx::query("DELETE FROM participants WHERE room_id = $1 AND id = $2")
                    .bind(room.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Claim { dead } => {
                if let Some(seq) = cluster::claim(&mut tx, node, dead).await? {
                    *last_seq = (*last_seq).max(seq);
                }
            }
            Write::Event(e) => {
                // Alone, the one writer numbers the outbox; nodes of a cluster share it, so
                // its numbers come from one sequence and a session's events stay in order
                // when another node takes them over.
                let seq = if node.is_empty() {
                    "$9"
                } else {
                    "nextval('outbox_seq')"
                };
                let sql = format!(
                    "INSERT INTO outbox (id, session, name, body, created_at, hook_pending, \
                     cdr_pending, node, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {seq}) \
                     RETURNING seq"
                );
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(e.id.as_str())
                    .bind(e.session.as_str())
                    .bind(e.name.as_str())
                    .bind(e.body.as_str())
                    .bind(e.created_at)
                    .bind(i64::from(e.hook))
                    .bind(i64::from(e.cdr))
                    .bind(node);
                if node.is_empty() {
                    insert = insert.bind(*last_seq + 1);
                }
                let stored: i64 = insert.fetch_one(&mut *tx).await?.try_get("seq")?;
                *last_seq = (*last_seq).max(stored);
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts participant rows in one statement; a row whose room is gone fails it (the
/// foreign key), and the journal then retries job by job.
async fn insert_participants(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[&Write],
) -> Result<(), StoreError> {
    let mut sql = String::from("INSERT INTO participants (room_id, id, created_at, body) VALUES ");
    for i in 0..rows.len() {
        let n = i * 4;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        if let Write::InsertParticipant {
            room,
            id,
            created_at,
            body,
        } = row
        {
            query = query
                .bind(room.as_str())
                .bind(id.as_str())
                .bind(*created_at)
                .bind(body.as_str());
        }
    }
    let done = query.execute(&mut **tx).await.map_err(map_write_error)?;
    if done.rows_affected() != rows.len() as u64 {
        return Err(StoreError::RoomMissing);
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}
