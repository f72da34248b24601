-- Users a meeting names as its hosts (besides its owner): their join grants carry the host role.
CREATE TABLE meeting_hosts (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    PRIMARY KEY (meeting_id, username)
);
