"""The orders service: the HTTP API over orders and the consumer of reservation outcomes."""
