-- Message Level Status as the Peppol Network Policy makes it mandatory (MLS 1.1.0): what the
-- service levels MLS-1 (sent within 20 minutes of the receipt) and MLS-2 (received within 25
-- minutes of the sending) are measured from, when a positive MLS goes out, and where an MLS goes
-- when the MLS_TO it was addressed to fails.

-- Per company: a positive MLS goes out when the inbound processor accepted the document
-- (on_processing), or when the company's ERP acknowledges it through the API (on_acknowledge;
-- an AB goes out instead when the deadline nears first).
ALTER TABLE companies
    ADD COLUMN positive_mls text NOT NULL DEFAULT 'on_processing'
        CHECK (positive_mls IN ('on_processing', 'on_acknowledge'));

ALTER TABLE inbound_messages
    ADD COLUMN mls_held text CHECK (mls_held IN ('AP', 'AB')),  -- waiting for the acknowledgement
    ADD COLUMN mls_warned_at timestamptz;                        -- operators warned of the deadline
CREATE INDEX inbound_mls_held ON inbound_messages (received_at) WHERE mls_held IS NOT NULL;
CREATE INDEX inbound_received_at ON inbound_messages (received_at);

ALTER TABLE outbound_messages
    ADD COLUMN mls_type text CHECK (mls_type IN ('FAILURE_ONLY', 'ALWAYS_SEND')),  -- NULL: absent
    ADD COLUMN mls_warned_at timestamptz,
    -- Another receiver for the same message when the first cannot be reached: the sending
    -- provider's SPID for an MLS addressed to the envelope's MLS_TO.
    ADD COLUMN fallback_receiver text,
    ADD COLUMN fallback_sha256 bytea REFERENCES documents (sha256),
    ADD COLUMN fallback_instance text;
CREATE INDEX outbound_delivered_at ON outbound_messages (delivered_at) WHERE delivered_at IS NOT NULL;
