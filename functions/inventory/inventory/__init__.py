"""The inventory service: stock levels, the stock HTTP API, and the reservation saga step."""
