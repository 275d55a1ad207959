-- The access point: what each participant receives, evidence for received messages, and the
-- outbound queue with its audit trail.

-- Participant values are stored lower-cased (they compare case-insensitively); display keeps
-- the value as registered.
ALTER TABLE participants ADD COLUMN display text;
UPDATE participants SET display = value WHERE display IS NULL;
ALTER TABLE participants ALTER COLUMN display SET NOT NULL;

CREATE TABLE participant_services (
    scheme         text NOT NULL,
    value          text NOT NULL,
    document_type  text NOT NULL,  -- scheme::value
    process        text NOT NULL,  -- scheme::value
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scheme, value, document_type, process),
    FOREIGN KEY (scheme, value) REFERENCES participants (scheme, value) ON DELETE CASCADE
);

ALTER TABLE inbound_messages
    ADD COLUMN instance_identifier text,
    ADD COLUMN message_sha256 bytea REFERENCES documents (sha256),
    ADD COLUMN company_id uuid REFERENCES companies (id);
CREATE INDEX inbound_messages_receiver ON inbound_messages (receiver_scheme, receiver_value, id);

CREATE TABLE outbound_messages (
    id                  bigserial PRIMARY KEY,
    company_id          uuid REFERENCES companies (id),
    sender              text NOT NULL,   -- participant scheme::value
    receiver            text NOT NULL,
    document_type       text NOT NULL,   -- scheme::value
    process             text NOT NULL,   -- scheme::value
    country_c1          char(2) NOT NULL,
    instance_identifier text NOT NULL,
    document_sha256     bytea NOT NULL REFERENCES documents (sha256),  -- the SBD sent
    as4_message_id      text NOT NULL UNIQUE,
    conversation_id     text NOT NULL,
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'sending', 'retrying', 'delivered', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    locked_until        timestamptz,
    give_up_at          timestamptz NOT NULL,
    endpoint_url        text,            -- fixed endpoint (skips discovery) or the one used
    endpoint_cert       bytea,           -- DER
    fixed_endpoint      boolean NOT NULL DEFAULT false,
    receiver_ap         text,
    sent_message_sha256 bytea REFERENCES documents (sha256),
    receipt             bytea,
    error_code          text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    delivered_at        timestamptz
);
CREATE INDEX outbound_ready ON outbound_messages (next_attempt_at)
    WHERE state IN ('queued', 'retrying', 'sending');
CREATE INDEX outbound_company ON outbound_messages (company_id, id);

CREATE TABLE outbound_audit (
    id           bigserial PRIMARY KEY,
    outbound_id  bigint NOT NULL REFERENCES outbound_messages (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    state        text NOT NULL,
    reason       text NOT NULL
);
CREATE INDEX outbound_audit_message ON outbound_audit (outbound_id, id);
