"""Print the services a Consul agent holds, one line each: `show_services.py HOST:PORT`."""

import json
import sys
import urllib.request

with urllib.request.urlopen(f"http://{sys.argv[1]}/v1/agent/services", timeout=10) as response:
    services = json.load(response)
print(f"{'ID':<28} {'NAME':<12} {'ADDRESS:PORT':<22} TAGS  META")
for s in sorted(services.values(), key=lambda s: s["ID"]):
    tags = ",".join(s.get("Tags") or []) or "-"
    meta = ",".join(f"{k}={v}" for k, v in sorted((s.get("Meta") or {}).items()))
    print(
        f"{s['ID']:<28} {s['Service']:<12} {s['Address'] + ':' + str(s['Port']):<22} {tags}  {meta}"
    )
