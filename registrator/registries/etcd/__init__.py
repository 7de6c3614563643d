"""etcd v3 as a registry (`etcd://`, and the CoreDNS/SkyDNS layout `skydns2://`): a lease
store for `kv.leased`, spoken through etcd's JSON gateway: keys on one lease per registrator."""
