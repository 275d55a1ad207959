-- The REST API: operators, API keys and bearer tokens (stored only as hashes), receiving
-- profiles, idempotent submissions, and who fetched what from a mailbox.

CREATE TABLE operators (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE companies ADD COLUMN operator_id uuid REFERENCES operators (id);
CREATE INDEX companies_operator ON companies (operator_id);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    company_id    uuid REFERENCES companies (id) ON DELETE CASCADE,
    operator_id   uuid REFERENCES operators (id) ON DELETE CASCADE,
    label         text NOT NULL DEFAULT '',
    scopes        text[] NOT NULL,
    key_hash      bytea NOT NULL UNIQUE,
    prefix        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    last_used_ip  text,
    CHECK ((company_id IS NULL) <> (operator_id IS NULL))
);
CREATE INDEX api_keys_company ON api_keys (company_id);
CREATE INDEX api_keys_operator ON api_keys (operator_id);

CREATE TABLE access_tokens (
    token_hash  bytea PRIMARY KEY,
    api_key_id  uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    scopes      text[] NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

CREATE TABLE company_profiles (
    id            uuid PRIMARY KEY,
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    network       text NOT NULL DEFAULT 'PEPPOL',
    profile       text NOT NULL,
    version       text NOT NULL,
    scheme        text NOT NULL,
    value         text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'active', 'removed', 'failed')),
    status_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX company_profiles_live ON company_profiles (company_id, profile, version)
    WHERE status <> 'removed';

CREATE TABLE idempotency_keys (
    company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    key         text NOT NULL,
    status      integer NOT NULL,
    response    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, key)
);

CREATE INDEX mailbox_entries_newest ON mailbox_entries (company_id, id DESC);
