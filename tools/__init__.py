"""Developer tools (never deployed)."""
