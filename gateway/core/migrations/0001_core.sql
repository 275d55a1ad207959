-- Core storage: documents stored once by content, companies and the participants they receive
-- as, AS4 messages in both directions, mailbox entries and the event outbox.

CREATE TABLE documents (
    sha256      bytea PRIMARY KEY CHECK (length(sha256) = 32),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE companies (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    country      char(2) NOT NULL,
    business_id  text NOT NULL,
    verified     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (country, business_id)
);

CREATE TABLE participants (
    scheme        text NOT NULL,
    value         text NOT NULL,
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scheme, value)
);
CREATE INDEX participants_company ON participants (company_id);

CREATE TABLE inbound_messages (
    id                 bigserial PRIMARY KEY,
    as4_message_id     text NOT NULL,
    sending_ap         text NOT NULL,
    sender_cert_subject text NOT NULL,
    conversation_id    text NOT NULL,
    sender_scheme      text NOT NULL,
    sender_value       text NOT NULL,
    receiver_scheme    text NOT NULL,
    receiver_value     text NOT NULL,
    document_type      text NOT NULL,
    process            text NOT NULL,
    country_c1         char(2),
    document_sha256    bytea NOT NULL REFERENCES documents (sha256),
    payload_bytes      bigint NOT NULL,
    message_bytes      bigint NOT NULL,
    receipt            bytea NOT NULL,
    sent_at            timestamptz NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (as4_message_id, sending_ap)
);

CREATE TABLE mailbox_entries (
    id            bigserial PRIMARY KEY,
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    message_id    bigint NOT NULL REFERENCES inbound_messages (id) ON DELETE CASCADE,
    read_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, message_id)
);
CREATE INDEX mailbox_entries_unread ON mailbox_entries (company_id, id) WHERE read_at IS NULL;

CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    company_id  uuid REFERENCES companies (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_company ON events (company_id, id);
