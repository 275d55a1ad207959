-- SML registration that failed is tried again with backoff: a pending profile of a verified
-- company keeps how often its participant's registration failed and when to try next.
ALTER TABLE company_profiles ADD COLUMN sml_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE company_profiles ADD COLUMN sml_retry_at timestamptz;
CREATE INDEX company_profiles_sml_retry ON company_profiles (sml_retry_at) WHERE sml_retry_at IS NOT NULL;

-- A participant that left our SMP but whose SML record could not be deleted yet.
CREATE TABLE sml_removals (
    scheme      text NOT NULL,
    value       text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    retry_at    timestamptz NOT NULL,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scheme, value)
);
