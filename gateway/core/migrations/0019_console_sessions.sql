-- Sessions of the operator console (/console/): a browser signs in with a company's or an
-- operator's API key and holds a random session secret in an HttpOnly cookie. Only its SHA-256
-- is kept; the session ends at expires_at, at sign-out, or when the key is revoked or expires.
CREATE TABLE console_sessions (
    session_hash  bytea PRIMARY KEY,
    api_key_id    uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    scopes        text[] NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    client_ip     text
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
