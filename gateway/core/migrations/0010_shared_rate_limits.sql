-- API rate limits shared by every gateway process on this database: one token bucket per API
-- key, refilled continuously. Unlogged: a bucket lost in a crash only refills early.
CREATE UNLOGGED TABLE rate_buckets (
    key         text PRIMARY KEY,
    tokens      double precision NOT NULL,
    allowed     boolean NOT NULL,
    updated_at  timestamptz NOT NULL
);
