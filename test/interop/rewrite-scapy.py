"""Scapy side of test/unit/rewrite.test.ts (run with /usr/bin/python3, Debian python3-scapy).

stdin: JSON list of hex packets (rewritten by mip6: with a HAO or an RH2).
stdout: JSON list, per packet: {"ok": bool, "hoa": str|null, "rh": str|null} where ok says that
scapy, recomputing the upper-layer checksum itself, arrives at the value already in the packet.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import raw  # noqa: E402
from scapy.layers.inet import TCP, UDP  # noqa: E402
from scapy.layers.inet6 import HAO, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting  # noqa: E402


def check(hexpkt):
    p = IPv6(bytes.fromhex(hexpkt))
    layer = next((l for l in (TCP, UDP, ICMPv6EchoRequest) if l in p), None)
    if layer is None:
        return {"ok": False, "hoa": None, "rh": None}
    field = "chksum" if layer in (TCP, UDP) else "cksum"
    orig = getattr(p[layer], field)
    q = p.copy()
    delattr(q[layer], field)
    # scapy honours a HAO only when it is the sole option of its header (see wire-scapy.py).
    if IPv6ExtHdrDestOpt in q:
        haos = [o for o in q[IPv6ExtHdrDestOpt].options if isinstance(o, HAO)]
        if haos:
            q[IPv6ExtHdrDestOpt].options = haos
    ok = getattr(IPv6(raw(q))[layer], field) == orig
    return {
        "ok": bool(ok),
        "hoa": p[HAO].hoa if HAO in p else None,
        "rh": p[IPv6ExtHdrRouting].addresses[0] if IPv6ExtHdrRouting in p else None,
    }


print(json.dumps([check(h) for h in json.load(sys.stdin)]))
