-- Cluster mode (PostgreSQL): the nodes sharing this database, each with a lease it renews;
-- the node that owns each room; the node that delivers each outbox row. One node alone
-- (SQLite, or PostgreSQL without cluster mode) leaves `owner` and `node` empty.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    public_url TEXT NOT NULL,
    media TEXT NOT NULL,
    state TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    participants BIGINT NOT NULL,
    forwarded_kbps BIGINT NOT NULL,
    draining BIGINT NOT NULL,
    taken_by TEXT NOT NULL
);

ALTER TABLE rooms ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX rooms_owner ON rooms (owner);

ALTER TABLE outbox ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_node ON outbox (node, seq);
