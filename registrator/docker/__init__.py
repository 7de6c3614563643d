"""The Docker adapter: the engine's list, inspect and event stream, translated into `core.model`."""
