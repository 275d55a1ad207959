-- Requests that create something are answered once.
--
-- An Idempotency-Key is claimed in the transaction that creates what the request asks for,
-- scoped to the calling company or operator (``owner``), with a SHA-256 of the request so a key
-- reused with another request is refused. The answer is kept as it was sent (text, not jsonb,
-- which would reorder it). Keys live 24 hours; older ones are purged as new ones are claimed.
--
-- A business document submitted again without a key is found by a hash of its business key
-- (sender, receiver, document type, ID and IssueDate), unless the company turns the check off.

ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ALTER COLUMN company_id DROP NOT NULL;
ALTER TABLE idempotency_keys ADD COLUMN operator_id uuid REFERENCES operators (id) ON DELETE CASCADE;
ALTER TABLE idempotency_keys
    ADD CONSTRAINT idempotency_keys_one_owner CHECK ((company_id IS NULL) <> (operator_id IS NULL));
ALTER TABLE idempotency_keys ADD COLUMN owner uuid GENERATED ALWAYS AS (coalesce(company_id, operator_id)) STORED;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (owner, key);
ALTER TABLE idempotency_keys ADD COLUMN request_sha256 bytea;
ALTER TABLE idempotency_keys ALTER COLUMN status DROP NOT NULL;
ALTER TABLE idempotency_keys ALTER COLUMN response DROP NOT NULL;
ALTER TABLE idempotency_keys ALTER COLUMN response TYPE text USING response::text;
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

ALTER TABLE companies ADD COLUMN duplicate_check boolean NOT NULL DEFAULT true;

ALTER TABLE outbound_messages ADD COLUMN business_key bytea;
CREATE INDEX outbound_messages_business_key ON outbound_messages (business_key, created_at)
    WHERE business_key IS NOT NULL;
