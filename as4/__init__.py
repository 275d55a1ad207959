"""The Peppol AS4 message layer: build, parse, sign, verify, encrypt and decrypt."""
