-- Sign-in through an OpenID Connect provider.

-- The picture a provider gives (empty for local accounts).
ALTER TABLE users ADD COLUMN picture_url TEXT NOT NULL DEFAULT '';

-- Who a provider's person is here. Linked by (issuer, subject), never by a matching name: a
-- provider's "alice" does not become a local account called alice.
CREATE TABLE external_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_sign_in_ms BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- Sign-ins on their way through the provider: the state's hash, the browser's cookie's hash,
-- and what the answer is checked and exchanged with. Taken (deleted) when the browser comes
-- back, so a state works once.
CREATE TABLE oidc_sign_ins (
    state_hash TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX oidc_sign_ins_expiry ON oidc_sign_ins (expires_at_ms);
