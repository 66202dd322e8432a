"""Converge shared layer: the event contract and the plumbing every service uses.

Nothing here knows a service's rules; services import it for the envelope, the stream publisher,
versioned writes, the inbox consumer scaffold, settings and observability.
"""
