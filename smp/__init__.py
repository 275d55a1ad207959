"""Peppol identifiers, SML/SMP discovery and SMP publishing."""
