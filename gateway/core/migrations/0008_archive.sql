-- Archival: completed exchanges move to a filesystem or S3 archive after a configurable age.
-- Their metadata rows stay (listings, duplicate detection by MessageId); the bulky parts (the
-- document, the AS4 message, the receipt) leave the hot tables and are read from the archive.
ALTER TABLE documents ALTER COLUMN content DROP NOT NULL;
ALTER TABLE inbound_messages ALTER COLUMN receipt DROP NOT NULL;
ALTER TABLE inbound_messages ADD COLUMN archived_at timestamptz, ADD COLUMN archive_key text;
ALTER TABLE outbound_messages ADD COLUMN archived_at timestamptz, ADD COLUMN archive_key text;
CREATE INDEX inbound_to_archive ON inbound_messages (received_at) WHERE archived_at IS NULL;
CREATE INDEX outbound_to_archive ON outbound_messages (updated_at)
    WHERE archived_at IS NULL AND state IN ('delivered', 'failed');
CREATE INDEX inbound_archived ON inbound_messages (received_at) WHERE archived_at IS NOT NULL;
CREATE INDEX outbound_archived ON outbound_messages (created_at) WHERE archived_at IS NOT NULL;
-- Which messages still use a stored document (it is emptied when none does).
CREATE INDEX inbound_document ON inbound_messages (document_sha256);
CREATE INDEX inbound_message_document ON inbound_messages (message_sha256);
CREATE INDEX outbound_document ON outbound_messages (document_sha256);
CREATE INDEX outbound_sent_document ON outbound_messages (sent_message_sha256);
