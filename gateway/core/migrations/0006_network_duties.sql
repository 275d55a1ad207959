-- Peppol network duties: validation policies, Message Level Status, business responses linked
-- to the documents they answer, and the exchange records behind the monthly reports.

-- Per company: what happens to invalid documents it sends (refuse or send with warnings) and
-- whether documents it receives are validated before they reach its mailbox.
ALTER TABLE companies
    ADD COLUMN outbound_validation text NOT NULL DEFAULT 'reject'
        CHECK (outbound_validation IN ('reject', 'warn')),
    ADD COLUMN inbound_validation text NOT NULL DEFAULT 'off'
        CHECK (inbound_validation IN ('off', 'reject', 'warn')),
    ADD COLUMN provider boolean NOT NULL DEFAULT false;  -- this access point's own SPID holder

-- Received messages: what follows the receipt (validation, MLS, linking a response) is done by
-- the inbound processor, off the AS4 path. "status" pending = not in the mailbox yet.
ALTER TABLE inbound_messages
    ADD COLUMN document_id text,             -- the business document's own cbc:ID
    ADD COLUMN kind text NOT NULL DEFAULT 'business'
        CHECK (kind IN ('business', 'response', 'mls', 'mlr', 'report')),
    ADD COLUMN status text NOT NULL DEFAULT 'stored' CHECK (status IN ('stored', 'pending', 'rejected')),
    ADD COLUMN processing text NOT NULL DEFAULT 'done' CHECK (processing IN ('pending', 'done')),
    ADD COLUMN processing_until timestamptz,
    ADD COLUMN mls_to text,
    ADD COLUMN mls_type text,
    ADD COLUMN mls_code text,
    ADD COLUMN mls_outbound_id bigint REFERENCES outbound_messages (id),
    ADD COLUMN validation jsonb,
    ADD COLUMN answers_outbound_id bigint REFERENCES outbound_messages (id),
    ADD COLUMN response_code text,
    ADD COLUMN response_outbound_id bigint REFERENCES outbound_messages (id);
CREATE INDEX inbound_processing ON inbound_messages (id) WHERE processing = 'pending';

ALTER TABLE outbound_messages
    ADD COLUMN document_id text,
    ADD COLUMN kind text NOT NULL DEFAULT 'business'
        CHECK (kind IN ('business', 'response', 'mls', 'mlr', 'report')),
    ADD COLUMN answers_inbound_id bigint REFERENCES inbound_messages (id),
    ADD COLUMN mls_code text,
    ADD COLUMN mls_reason text,
    ADD COLUMN mls_at timestamptz,
    ADD COLUMN response_code text,
    ADD COLUMN response_inbound_id bigint REFERENCES inbound_messages (id),
    ADD COLUMN validation jsonb;
CREATE INDEX outbound_instance ON outbound_messages (instance_identifier);
CREATE INDEX outbound_document_id ON outbound_messages (company_id, document_id);

-- One row per successful exchange (a receipt sent or received), recorded as it happens: the
-- data Peppol's Transaction Statistics and End User Statistics reports are built from.
CREATE TABLE exchanges (
    id                 bigserial PRIMARY KEY,
    direction          text NOT NULL CHECK (direction IN ('in', 'out')),
    source_id          bigint NOT NULL,      -- inbound_messages.id or outbound_messages.id
    exchanged_at       timestamptz NOT NULL, -- eb:Timestamp
    other_sp           text NOT NULL,        -- the other access point's seat id (certificate CN)
    document_type      text NOT NULL,        -- scheme::value
    process            text NOT NULL,        -- scheme::value
    transport_profile  text NOT NULL DEFAULT 'peppol-transport-as4-v2_0',
    country_c1         char(2),              -- NULL when the envelope had none (reported as ZZ)
    country_c4         char(2),              -- known for received documents only
    company_id         uuid REFERENCES companies (id) ON DELETE SET NULL,
    end_user_country   char(2),
    counts_for_eusr    boolean NOT NULL,
    UNIQUE (direction, source_id)
);
CREATE INDEX exchanges_time ON exchanges (exchanged_at);

CREATE TABLE reports (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('TSR', 'EUSR')),
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    content       bytea NOT NULL,
    valid         boolean NOT NULL,
    validation    jsonb NOT NULL,
    outbound_id   bigint REFERENCES outbound_messages (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, period_start)
);
