-- Hosts' decisions that hold at JoinMeeting, the waiting room, the record of host actions,
-- and host actions from the API on their way to relays.

-- 'default' (guests of private meetings wait), 'off', 'guests', 'everyone'.
ALTER TABLE meetings ADD COLUMN waiting_room TEXT NOT NULL DEFAULT 'default';
ALTER TABLE meetings ADD COLUMN locked BIGINT NOT NULL DEFAULT 0;

-- What relays report of each participant: host, cohost, participant, guest.
ALTER TABLE live_participants ADD COLUMN role TEXT NOT NULL DEFAULT 'participant';

CREATE TABLE meeting_bans (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    banned_at_ms BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, identity)
);

-- One row per person who asked to join a meeting with a waiting room. The ticket (its hash
-- here) is the waiter's credential; the id names it to hosts.
CREATE TABLE waiting (
    id TEXT PRIMARY KEY,
    ticket_hash TEXT NOT NULL UNIQUE,
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    display_name TEXT NOT NULL,
    guest BIGINT NOT NULL,
    receive_only BIGINT NOT NULL,
    -- base64 of the client's MLS signing key (empty without one).
    e2ee_signature_key TEXT NOT NULL,
    -- 'waiting', 'admitted', 'rejected'.
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    asked_at_ms BIGINT NOT NULL,
    seen_at_ms BIGINT NOT NULL
);
CREATE INDEX waiting_by_meeting ON waiting (meeting_id, state, asked_at_ms);

CREATE TABLE host_actions (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    at_ms BIGINT NOT NULL,
    by_identity TEXT NOT NULL,
    by_display_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target_identity TEXT NOT NULL,
    target_display_name TEXT NOT NULL,
    detail TEXT NOT NULL,
    via TEXT NOT NULL
);
CREATE INDEX host_actions_by_meeting ON host_actions (meeting_id, at_ms);

-- Host actions from the API for one relay: sent with each heartbeat until it reports them done.
CREATE TABLE relay_commands (
    id TEXT PRIMARY KEY,
    relay_id TEXT NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    -- The encoded ModerateMeetingRequest, base64.
    action TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX relay_commands_by_relay ON relay_commands (relay_id);
