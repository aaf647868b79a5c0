//! The cluster's shared state in PostgreSQL: the nodes with their leases and load, which
//! node owns each room, the takeover of a dead node. Times are the database's clock
//! (`clock_timestamp()`), so nodes on machines whose clocks differ judge leases alike.

use super::{Store, StoreError};
use sqlx::Row;

/// The database's clock in ms, as SQL.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Where a node stands in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// It renews its lease (or did until the lease ran out, not yet noticed).
    Alive,
    /// Another node took over its rooms and events.
    Dead,
}

/// A node as the database has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    /// Its name.
    pub id: String,
    /// The base URL of its REST API for the other nodes.
    pub url: String,
    /// The public URL its clients use.
    pub public_url: String,
    /// Its media socket's announced address (relays from other nodes go there).
    pub media: String,
    /// Alive or dead.
    pub state: NodeState,
    /// Whether its lease is still running by the database's clock.
    pub leased: bool,
    /// Participants in its rooms at its last renewal.
    pub participants: i64,
    /// Video and audio it forwarded at its last renewal, kbit/s.
    pub forwarded_kbps: i64,
    /// Whether it is stopping (it admits nothing new).
    pub draining: bool,
    /// Rooms it owns now.
    pub rooms: i64,
}

impl NodeRow {
    /// Whether it can take new rooms: alive, leased and not stopping.
    pub fn available(&self) -> bool {
        self.state == NodeState::Alive && self.leased && !self.draining
    }
}

/// Makes the outbox's shared number sequence, starting after the rows already there (a
/// database that served one node before it served a cluster).
pub(super) async fn prepare_sequence(pool: &sqlx::AnyPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    // Nodes starting together: one prepares, the others wait and find it done.
    sqlx::query("SELECT pg_advisory_xact_lock(726172)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE SEQUENCE IF NOT EXISTS outbox_seq")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "SELECT setval('outbox_seq', m) FROM (SELECT MAX(seq) AS m FROM outbox) AS x \
         WHERE m IS NOT NULL AND m > (SELECT last_value FROM outbox_seq)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The takeover of `dead` by `me` in the journal's transaction (see `Write::Claim`); the
/// highest outbox number it gave, when it took the node.
pub(super) async fn claim(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    me: &str,
    dead: &str,
) -> Result<Option<i64>, StoreError> {
    // Two survivors racing: the row lock makes the second wait, then find it dead.
    let sql = format!(
        "UPDATE nodes SET state = 'dead', taken_by = $1 \
         WHERE id = $2 AND state = 'alive' AND lease_until < {NOW_MS}"
    );
    let taken = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(me)
        .bind(dead)
        .execute(&mut **tx)
        .await?;
    if taken.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query("UPDATE rooms SET owner = $1 WHERE owner = $2")
        .bind(me)
        .bind(dead)
        .execute(&mut **tx)
        .await?;
    // Renumbered one by one in their order: each gets the next number of the shared
    // sequence, so they stay in order and come after everything this node wrote so far.
    let rows = sqlx::query("SELECT seq FROM outbox WHERE node = $1 ORDER BY seq")
        .bind(dead)
        .fetch_all(&mut **tx)
        .await?;
    let mut last = 0;
    for row in rows {
        let old: i64 = row.try_get("seq")?;
        last = sqlx::query(
            "UPDATE outbox SET seq = nextval('outbox_seq'), node = $1 WHERE seq = $2 RETURNING seq",
        )
        .bind(me)
        .bind(old)
        .fetch_one(&mut **tx)
        .await?
        .try_get("seq")?;
    }
    Ok(Some(last))
}

impl Store {
    /// Enters this node in the cluster (again, after a restart) with a fresh lease.
    pub async fn register_node(
        &self,
        url: &str,
        public_url: &str,
        media: &str,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO nodes (id, url, public_url, media, state, lease_until, started_at, \
             participants, forwarded_kbps, draining, taken_by) \
             VALUES ($1, $2, $3, $5, 'alive', {NOW_MS} + $4, {NOW_MS}, 0, 0, 0, '') \
             ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, public_url = EXCLUDED.public_url, \
             media = EXCLUDED.media, \
             state = 'alive', lease_until = EXCLUDED.lease_until, started_at = EXCLUDED.started_at, \
             participants = 0, forwarded_kbps = 0, draining = 0, taken_by = ''"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&*self.node)
            .bind(url)
            .bind(public_url)
            .bind(lease_ms)
            .bind(media)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Renews this node's lease with its load; `false` when the cluster declared it dead
    /// meanwhile (its rooms and events belong to another node now).
    pub async fn renew_node(
        &self,
        lease_ms: i64,
        participants: i64,
        forwarded_kbps: i64,
        draining: bool,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE nodes SET lease_until = {NOW_MS} + $2, participants = $3, \
             forwarded_kbps = $4, draining = $5 WHERE id = $1 AND state = 'alive'"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&*self.node)
            .bind(lease_ms)
            .bind(participants)
            .bind(forwarded_kbps)
            .bind(i64::from(draining))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every node the cluster knows, with its room count.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let sql = format!(
            "SELECT n.id, n.url, n.public_url, n.media, n.state, n.participants, n.forwarded_kbps, \
             n.draining, CASE WHEN n.lease_until > {NOW_MS} THEN 1 ELSE 0 END AS leased, \
             (SELECT COUNT(*) FROM rooms r WHERE r.owner = n.id) AS rooms \
             FROM nodes n ORDER BY n.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    public_url: r.try_get("public_url")?,
                    media: r.try_get("media")?,
                    state: match r.try_get::<String, _>("state")?.as_str() {
                        "alive" => NodeState::Alive,
                        _ => NodeState::Dead,
                    },
                    leased: r.try_get::<i32, _>("leased")? == 1,
                    participants: r.try_get("participants")?,
                    forwarded_kbps: r.try_get("forwarded_kbps")?,
                    draining: r.try_get::<i64, _>("draining")? == 1,
                    rooms: r.try_get("rooms")?,
                })
            })
            .collect()
    }

    /// The node that owns room `id`, when the room is stored.
    pub async fn room_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT owner FROM rooms WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("owner"))
            .transpose()?)
    }
}
