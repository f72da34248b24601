-- Portable between SQLite and PostgreSQL: times are Unix milliseconds in BIGINT columns;
-- flags are BIGINT 0/1 (sqlx's Any driver cannot decode SQLite booleans).

CREATE TABLE users (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_user ON sessions (username);

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE meetings (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    owner TEXT NOT NULL,
    access TEXT NOT NULL,
    password_hash TEXT,
    guests_allowed BIGINT NOT NULL,
    max_participants BIGINT NOT NULL,
    e2ee_required BIGINT NOT NULL,
    relay_id TEXT,
    created_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT
);
CREATE INDEX meetings_by_owner ON meetings (owner);

CREATE TABLE meeting_allowed_users (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    PRIMARY KEY (meeting_id, username)
);

-- A seat is held from a grant until its connect window passes, and for as long as its
-- holder is connected to a relay.
CREATE TABLE seats (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    relay_id TEXT NOT NULL,
    issued_at_ms BIGINT NOT NULL,
    connect_by_ms BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, identity)
);

CREATE TABLE relays (
    relay_id TEXT PRIMARY KEY,
    webtransport_url TEXT NOT NULL,
    websocket_url TEXT NOT NULL,
    certificate_sha256 TEXT NOT NULL,
    admin_url TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    participants BIGINT NOT NULL,
    meetings BIGINT NOT NULL,
    bitrate_bps BIGINT NOT NULL,
    draining BIGINT NOT NULL,
    drain_requested BIGINT NOT NULL,
    registered_at_ms BIGINT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL
);

CREATE TABLE live_participants (
    relay_id TEXT NOT NULL,
    participant_id BIGINT NOT NULL,
    meeting_id TEXT NOT NULL,
    identity TEXT NOT NULL,
    display_name TEXT NOT NULL,
    joined_at_ms BIGINT NOT NULL,
    PRIMARY KEY (relay_id, participant_id)
);
CREATE INDEX live_participants_by_meeting ON live_participants (meeting_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_seed TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- NULL while the key signs; afterwards, when the last token it signed expires.
    valid_until_ms BIGINT
);
