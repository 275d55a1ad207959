"""Receiving: the AS4 endpoint other access points post to, storing what they send before the
receipt, and processing it afterwards (validation policy, MLS, linking answers)."""
