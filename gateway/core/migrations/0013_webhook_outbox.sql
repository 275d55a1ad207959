-- The events not yet fanned out to webhook deliveries, one row each.
--
-- A trigger on events adds the row in the same transaction as the event, so it becomes visible
-- exactly when the event commits, whatever order ids were taken in. The fan-out deletes the rows
-- it turns into deliveries (FOR UPDATE SKIP LOCKED, so several processes share the work), so the
-- table stays as small as the backlog and its primary key is the only index it needs.
-- This replaces webhook_cursor, which skipped an event whose id was taken before, but committed
-- after, a later one the fan-out had already seen.

CREATE TABLE webhook_outbox (
    event_id  bigint PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE
);

CREATE FUNCTION webhook_outbox_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (event_id) SELECT id FROM new_events;
    RETURN NULL;
END
$$;

-- Wait for transactions still writing events, and hold new writers until the trigger exists, so
-- every event is either below the cursor read next or gets its row from the trigger.
LOCK TABLE events IN SHARE MODE;
LOCK TABLE webhook_cursor IN EXCLUSIVE MODE;

CREATE TRIGGER events_webhook_outbox AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_outbox_add();

-- Events at or below the cursor were fanned out; those above it are still to do.
INSERT INTO webhook_outbox (event_id)
SELECT e.id FROM events e, webhook_cursor c WHERE e.id > c.last_event_id;

COMMENT ON TABLE webhook_cursor IS 'No longer read or written: webhook_outbox holds the events still to fan out.';
