"""Sending: a submitted document becomes a queued job; workers find the receiver (SML/SMP), deliver
over AS4 with retries, and record the outcome. Circuit breakers protect failing partners."""
