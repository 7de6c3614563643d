"""Consul's KV store as a registry (`consulkv://`): a lease store for `kv.leased`, gliderlabs'
keys held by a session."""
