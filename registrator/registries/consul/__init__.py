"""The Consul agent registry: services, checks and maintenance mode over the agent's HTTP API."""
