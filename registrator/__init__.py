"""registrator: keeps the local Consul agent's service list equal to what runs in Docker."""

__version__ = "0.2.0"
