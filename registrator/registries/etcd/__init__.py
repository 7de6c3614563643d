"""etcd v3 as a registry (`etcd://`, and the CoreDNS/SkyDNS layout `skydns2://`), spoken
through etcd's JSON gateway over httpx: keys on one lease per registrator, kept alive."""
