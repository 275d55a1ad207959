-- What each stored business document says (its content view), read once when the document is
-- stored: the listing fields as typed columns to filter on, the whole view as jsonb. One row per
-- received or sent message, removed with the message when its retention ends. Documents stored
-- before this migration get theirs when first asked for (GET .../content or .../render).
CREATE TABLE document_contents (
    id              bigserial PRIMARY KEY,
    inbound_id      bigint UNIQUE REFERENCES inbound_messages (id) ON DELETE CASCADE,
    outbound_id     bigint UNIQUE REFERENCES outbound_messages (id) ON DELETE CASCADE,
    view_version    integer NOT NULL,
    number          text,
    issue_date      date,
    due_date        date,
    seller_name     text,
    buyer_name      text,
    payable_amount  numeric,
    currency        text,
    content         jsonb NOT NULL,
    extracted_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((inbound_id IS NULL) <> (outbound_id IS NULL))
);
CREATE INDEX document_contents_number ON document_contents (lower(number));
CREATE INDEX document_contents_issue_date ON document_contents (issue_date);
CREATE INDEX document_contents_payable ON document_contents (payable_amount);
