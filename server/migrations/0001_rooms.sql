-- Rooms and their participants. Written so that one text serves SQLite and PostgreSQL.
CREATE TABLE rooms (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    options TEXT NOT NULL
);

CREATE TABLE participants (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room_id, id)
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
