"""What the key-value registries (etcd, Consul KV) share: gliderlabs' key layout and values."""
