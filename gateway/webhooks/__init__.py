"""The events outbox and its delivery to the ERP's webhooks, with signatures and retries."""
