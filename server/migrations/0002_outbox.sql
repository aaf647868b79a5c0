-- Events waiting for their consumers (the webhook and the CDR file), in the order they
-- happened. A row is written in the same transaction as the change that caused it and is
-- deleted once every consumer that wants it has taken it. `seq` is assigned by the store's
-- one writer, so one text serves SQLite and PostgreSQL.
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL,
    session TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    hook_pending BIGINT NOT NULL,
    cdr_pending BIGINT NOT NULL
);

CREATE INDEX outbox_hook ON outbox (hook_pending, seq);
CREATE INDEX outbox_cdr ON outbox (cdr_pending, seq);
