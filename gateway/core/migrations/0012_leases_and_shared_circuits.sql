-- A claimed outbound job carries the token of its claim: the worker renews its short lease
-- while it delivers and records the outcome only while the token is still its own, so a worker
-- that lost its lease (another took the job) cannot overwrite the newer attempt.
ALTER TABLE outbound_messages ADD COLUMN claim_token uuid;

-- The circuit breaker per receiving endpoint is decided here, shared by every gateway process:
-- an open circuit stays open until opened_until; then one process claims the single probe
-- (probe_owner, until probe_until, after which another may take it over).
ALTER TABLE endpoint_circuits
    ADD COLUMN opened_until timestamptz,
    ADD COLUMN probe_until  timestamptz,
    ADD COLUMN probe_owner  text;
COMMENT ON TABLE endpoint_circuits IS
    'The circuit breaker per receiving endpoint, shared by every gateway process';
