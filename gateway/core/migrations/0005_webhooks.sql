-- Webhooks: registrations, and one delivery row per (webhook, event) fanned out from the
-- events outbox, retried on a schedule until answered with 200/201/204.

CREATE TABLE webhooks (
    id                uuid PRIMARY KEY,
    company_id        uuid REFERENCES companies (id) ON DELETE CASCADE,
    operator_id       uuid REFERENCES operators (id) ON DELETE CASCADE,
    destination_type  text NOT NULL CHECK (destination_type IN ('WEBHOOK', 'VENDOR_WEBHOOK')),
    destination       text NOT NULL,
    events            text[],          -- NULL: every event
    secret            text NOT NULL,   -- the HMAC key; needed in clear to sign
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((company_id IS NULL) <> (operator_id IS NULL))
);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    give_up_at       timestamptz NOT NULL,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- How far the fan-out has read the events outbox.
CREATE TABLE webhook_cursor (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_event_id  bigint NOT NULL DEFAULT 0
);
INSERT INTO webhook_cursor DEFAULT VALUES;
