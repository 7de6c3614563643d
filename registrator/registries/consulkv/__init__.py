"""Consul's KV store as a registry (`consulkv://`): gliderlabs' keys, held by a session."""
