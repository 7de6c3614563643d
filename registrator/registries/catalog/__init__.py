"""Consul's catalog, written directly: a node of registrator's own, for hosts with no agent."""
