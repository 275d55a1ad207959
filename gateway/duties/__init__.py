"""What the Peppol network and the law ask of an access point besides delivery: validation,
Message Level Status, business responses, the monthly reports, archival and retention."""
