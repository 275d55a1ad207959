-- Documents are XML and compress well, but PostgreSQL's default TOAST compression (pglz) costs
-- more CPU than the rest of storing a message. LZ4 compresses nearly as well at a fraction of
-- the cost; use it where the server was built with it (Debian's is).
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_settings
        WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)
    ) THEN
        ALTER TABLE documents ALTER COLUMN content SET COMPRESSION lz4;
        ALTER TABLE outbound_messages ALTER COLUMN receipt SET COMPRESSION lz4;
        ALTER TABLE inbound_messages ALTER COLUMN receipt SET COMPRESSION lz4;
    END IF;
END
$$;
