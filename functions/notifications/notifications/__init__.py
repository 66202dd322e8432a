"""The notifications service: read models built from events (availability, order outcomes, notifications)."""
