-- A received Message Level Status that breaks the MLS rules is kept and shown, never taken as
-- the answer to the document it names: the sent document records it here instead of mls_code.
ALTER TABLE outbound_messages ADD COLUMN mls_flagged jsonb;
