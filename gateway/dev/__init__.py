"""The local network ``make run`` starts: the sandbox, an embedded PostgreSQL, a Knot DNS server as
the SML, and a development PKI shaped like Peppol's. Never used on the real network."""
