-- The Peppol Directory: each company's business card (served by our SMP at
-- /businesscard/{participant} when the company opted in), and for each participant the latest
-- change the Directory's indexer has to be told about, with its retries.
CREATE TABLE business_cards (
    company_id  uuid PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    publish     boolean NOT NULL DEFAULT false,
    -- names, country, geographical_information, identifiers, websites, contacts,
    -- additional_information, registration_date
    card        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directory_notifications (
    id               bigserial PRIMARY KEY,
    scheme           text NOT NULL,
    value            text NOT NULL,          -- as registered (the indexer is told this form)
    company_id       uuid REFERENCES companies (id) ON DELETE SET NULL,
    action           text NOT NULL CHECK (action IN ('index', 'remove')),
    state            text NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    generation       integer NOT NULL DEFAULT 1,  -- bumped by each new change: an older send cannot close it
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    queued_at        timestamptz NOT NULL DEFAULT now(),  -- the current change (gives up after directory.give_up_after)
    sent_at          timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scheme, value)
);
CREATE INDEX directory_notifications_due ON directory_notifications (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX directory_notifications_company ON directory_notifications (company_id);
