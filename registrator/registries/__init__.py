"""Registry adapters, one folder each, every one behind `core.ports.Registry`."""
