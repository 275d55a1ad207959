-- The circuit breaker state per receiving access point endpoint, as the outbound workers last
-- changed it (each process decides from its own view; this is what operators see).
CREATE TABLE endpoint_circuits (
    url         text PRIMARY KEY,
    state       text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    failures    integer NOT NULL,
    cooldown    double precision NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
