"""Credentials and trust: API keys, operators and tokens; our AP identity (keys and certificates);
the trust decision about a peer's certificate; certificate renewal and expiry warnings."""
