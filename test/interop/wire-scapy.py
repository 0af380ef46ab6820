"""Scapy side of test/interop/wire-scapy.test.ts (run with /usr/bin/python3, Debian python3-scapy).

stdin: JSON {"parse": [hex, ...]}  (packets mip6 encoded)
stdout: JSON {"built": [{"name", "hex", "view", "expect"?}], "parsed": [view, ...]}

"built" packets are made by scapy itself (checksums computed by scapy); "view" is scapy's
dissection of a packet normalised to plain values, and the same function reads mip6's packets.
A checksum is judged by deleting the field and letting scapy recompute it.
"""
import json
import struct
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import raw  # noqa: E402
from scapy.layers.inet import TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    HAO, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6HAADReply, ICMPv6HAADRequest, ICMPv6MPAdv,
    ICMPv6MPSol, ICMPv6NDOptPrefixInfo, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting, MIP6MH_BA,
    MIP6MH_BE, MIP6MH_BRR, MIP6MH_BU, MIP6MH_CoT, MIP6MH_CoTI, MIP6MH_HoT, MIP6MH_HoTI,
    MIP6OptAltCoA, MIP6OptBindingAuthData, MIP6OptBRAdvice, MIP6OptNonceIndices, MIP6OptUnknown,
    MIP6MH_Generic)

MH_CLASSES = (MIP6MH_BRR, MIP6MH_HoTI, MIP6MH_CoTI, MIP6MH_HoT, MIP6MH_CoT, MIP6MH_BU, MIP6MH_BA, MIP6MH_BE,
              MIP6MH_Generic)

HOA, COA, HA, CN = "2001:db8:1::100", "2001:db8:2::100", "2001:db8:1::1", "2001:db8:3::1"
SEG = "2001:db8:4::1"
COOKIE = bytes(range(1, 9))
TOKEN = bytes(range(0xA0, 0xA8))
AUTH = bytes(range(0x10, 0x1C))


def cksum_ok(pkt, layer):
    field = "chksum" if layer in (TCP, UDP) else "cksum"
    orig = getattr(pkt[layer], field)
    q = pkt.copy()
    delattr(q[layer], field)
    # scapy's in6_pseudoheader only honours a HAO that is the sole option of its header, and
    # a dissected header also holds the PadN in front of it: keep only the HAO (autopad
    # re-inserts the same padding) so scapy recomputes over the HoA as RFC 6275 §6.3 says.
    if IPv6ExtHdrDestOpt in q:
        haos = [o for o in q[IPv6ExtHdrDestOpt].options if isinstance(o, HAO)]
        if haos:
            q[IPv6ExtHdrDestOpt].options = haos
    return getattr(IPv6(raw(q))[layer], field) == orig


def opt_view(o):
    t = o.otype
    if t in (0, 1):
        return None
    if isinstance(o, MIP6OptBRAdvice):
        return {"type": t, "refreshInterval": o.rinter}
    if isinstance(o, MIP6OptAltCoA):
        return {"type": t, "address": o.acoa}
    if isinstance(o, MIP6OptNonceIndices):
        return {"type": t, "homeNonceIndex": o.hni, "careOfNonceIndex": o.coni}
    if isinstance(o, MIP6OptBindingAuthData):
        return {"type": t, "authenticator": int(o.authenticator).to_bytes(12, "big").hex()}
    return {"type": t, "data": bytes(o.odata).hex()}


def view(p):
    v = {"src": p[IPv6].src, "dst": p[IPv6].dst, "hlim": p[IPv6].hlim}
    if HAO in p:
        v["hoa"] = p[HAO].hoa
    if IPv6ExtHdrRouting in p:
        r = p[IPv6ExtHdrRouting]
        v["rh"] = {"type": r.type, "segleft": r.segleft, "address": r.addresses[0]}
    if IPv6ExtHdrSegmentRouting in p:
        r = p[IPv6ExtHdrSegmentRouting]
        # Segment List[0] is the final destination (RFC 8754 §2).
        v["rh"] = {"type": r.type, "segleft": r.segleft, "address": r.addresses[0]}
    mh = next((p[c] for c in MH_CLASSES if c in p), None)
    if mh is not None:
        m = {"mhType": mh.mhtype, "ok": cksum_ok(p, type(mh))}
        if isinstance(mh, (MIP6MH_HoTI, MIP6MH_CoTI)):
            m["cookie"] = bytes(mh.cookie).hex()
        elif isinstance(mh, (MIP6MH_HoT, MIP6MH_CoT)):
            m.update(index=mh.index, cookie=bytes(mh.cookie).hex(), token=bytes(mh.token).hex())
        elif isinstance(mh, MIP6MH_BU):
            m.update(seq=mh.seq, flags=(int(mh.flags) << 9) | mh.reserved, lifetime=mh.mhtime)
        elif isinstance(mh, MIP6MH_BA):
            m.update(status=mh.status, flags=(int(mh.flags) << 5) | mh.res2, seq=mh.seq, lifetime=mh.mhtime)
        elif isinstance(mh, MIP6MH_BE):
            m.update(status=mh.status, homeAddress=mh.ha)
        opts = getattr(mh, "options", None) or []
        m["options"] = [x for x in (opt_view(o) for o in opts) if x is not None]
        v["mh"] = m
    for cls, name in ((ICMPv6HAADRequest, "haadRequest"), (ICMPv6HAADReply, "haadReply"),
                      (ICMPv6MPSol, "mps"), (ICMPv6MPAdv, "mpa"), (ICMPv6EchoRequest, "echoRequest"),
                      (ICMPv6EchoReply, "echoReply")):
        if cls in p:
            i = p[cls]
            c = {"kind": name, "id": i.id, "ok": cksum_ok(p, cls)}
            if cls in (ICMPv6HAADRequest, ICMPv6HAADReply):
                c["R"] = int(i.R)
            if cls is ICMPv6HAADReply:
                c["addresses"] = list(i.addresses)
            if cls is ICMPv6MPAdv:
                c["flags"] = int(i.flags)
                c["prefixes"] = []
                x = i.payload
                while x is not None and isinstance(x, ICMPv6NDOptPrefixInfo):
                    c["prefixes"].append({"prefixLength": x.prefixlen, "L": int(x.L), "A": int(x.A), "R": int(x.R),
                                          "valid": x.validlifetime, "preferred": x.preferredlifetime, "prefix": x.prefix})
                    x = x.payload if len(x.payload) else None
            if cls in (ICMPv6EchoRequest, ICMPv6EchoReply):
                c["seq"] = i.seq
                c["data"] = bytes(i.data).hex()
            v["icmp"] = c
    if TCP in p:
        v["tcp"] = {"sport": p[TCP].sport, "dport": p[TCP].dport, "seq": p[TCP].seq, "flags": int(p[TCP].flags),
                    "ok": cksum_ok(p, TCP)}
    if UDP in p:
        v["udp"] = {"sport": p[UDP].sport, "dport": p[UDP].dport, "len": p[UDP].len, "ok": cksum_ok(p, UDP)}
    return v


# scapy 2.5.0 defaults the Length of Nonce Indices and Binding Authorization Data to 16, not
# the 4 and 12 of RFC 6275 §6.2.6/§6.2.7 (mip6 rejects those with ERR_BAD_LENGTH), so the
# packets below set olen explicitly.


def dsmip(t, body):
    return MIP6OptUnknown(otype=t, odata=body)


def build():
    ip_ha_mn = IPv6(src=HA, dst=COA)
    rh2 = IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA])
    hao = IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
    out = [
        ("BRR", ip_ha_mn / rh2 / MIP6MH_BRR(), None),
        ("HoTI", IPv6(src=HOA, dst=CN) / MIP6MH_HoTI(cookie=COOKIE), None),
        ("CoTI", IPv6(src=COA, dst=CN) / MIP6MH_CoTI(cookie=COOKIE), None),
        ("HoT", IPv6(src=CN, dst=HOA) / MIP6MH_HoT(index=0x1234, cookie=COOKIE, token=TOKEN), None),
        ("CoT", IPv6(src=CN, dst=COA) / MIP6MH_CoT(index=0x4321, cookie=COOKIE, token=TOKEN), None),
        ("BU home", IPv6(src=COA, dst=HA) / hao / MIP6MH_BU(seq=7, flags="AHK", mhtime=150,
                                                           options=[MIP6OptAltCoA(acoa=COA)]), None),
        ("BU to CN", IPv6(src=COA, dst=CN, hlim=33) / hao / MIP6MH_BU(
            seq=65535, flags="A", mhtime=10,
            options=[MIP6OptNonceIndices(olen=4, hni=5, coni=6), MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(AUTH, "big"))]), None),
        ("BA home", ip_ha_mn / rh2 / MIP6MH_BA(status=0, flags="K", seq=7, mhtime=150,
                                              options=[MIP6OptBRAdvice(rinter=100)]), None),
        ("BA from CN", IPv6(src=CN, dst=COA) / rh2 / MIP6MH_BA(status=136, flags=0, seq=9, mhtime=0,
                                                              options=[MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(AUTH, "big"))]), None),
        ("BE", IPv6(src=CN, dst=COA) / MIP6MH_BE(status=1, ha=HOA), None),
        # RFC 5555 options: scapy has no classes for them, so their bytes are packed here by hand.
        ("BU DSMIPv6", IPv6(src=HOA, dst=HA) / MIP6MH_BU(seq=3, flags="AH", reserved=0x100, mhtime=60, options=[
            dsmip(29, struct.pack("!H4s", (24 << 10) | (1 << 9), bytes([192, 0, 2, 10]))),
            dsmip(32, struct.pack("!H4s", 0, bytes([198, 51, 100, 20])))]),
         [{"type": "ipv4HomeAddress", "prefixLength": 24, "requestPrefix": True, "address": "192.0.2.10"},
          {"type": "ipv4CareOfAddress", "address": "198.51.100.20"}]),
        ("BA DSMIPv6", IPv6(src=HA, dst=HOA) / MIP6MH_BA(status=0, flags=0, seq=3, mhtime=60, options=[
            dsmip(30, struct.pack("!BB4s", 0, 24 << 2, bytes([192, 0, 2, 10]))),
            dsmip(31, struct.pack("!BBI", 0x80, 0, 110))]),
         [{"type": "ipv4AddressAcknowledgement", "status": 0, "prefixLength": 24, "address": "192.0.2.10"},
          {"type": "natDetection", "udpEncapsulationRequired": True, "refreshTime": 110}]),
        ("TCP with HAO", IPv6(src=COA, dst=CN) / hao / TCP(sport=40000, dport=22, seq=1000, flags="S") / b"hello", None),
        ("TCP with RH2", IPv6(src=CN, dst=COA) / rh2 / TCP(sport=22, dport=40000, seq=5, flags="SA") / b"world!", None),
        ("TCP with SRH", IPv6(src=CN, dst=SEG) / IPv6ExtHdrSegmentRouting(addresses=[HOA, SEG], segleft=1)
         / TCP(sport=80, dport=40001, seq=77, flags="PA") / b"srh", None),
        ("UDP with HAO", IPv6(src=COA, dst=CN) / hao / UDP(sport=5000, dport=9999) / b"q", None),
        ("DHAAD Request", IPv6(src=COA, dst="2001:db8:1:0:fdff:ffff:ffff:fffe") / ICMPv6HAADRequest(id=77), None),
        ("DHAAD Reply", IPv6(src=HA, dst=COA) / ICMPv6HAADReply(id=77, addresses=[HA, "2001:db8:1::2"]), None),
        ("MPS", IPv6(src=COA, dst=HA) / hao / ICMPv6MPSol(id=5), None),
        ("MPA", ip_ha_mn / rh2 / ICMPv6MPAdv(id=5, flags=1) / ICMPv6NDOptPrefixInfo(
            prefixlen=64, L=1, A=1, R=1, validlifetime=86400, preferredlifetime=14400, prefix="2001:db8:1::"), None),
        ("Echo", IPv6(src=HOA, dst=CN) / ICMPv6EchoRequest(id=1, seq=2, data=b"ping"), None),
    ]
    res = []
    for name, pkt, expect in out:
        b = raw(pkt)
        item = {"name": name, "hex": b.hex(), "view": view(IPv6(b))}
        if expect is not None:
            item["expect"] = expect
        res.append(item)
    return res


def main():
    req = json.load(sys.stdin)
    parsed = [view(IPv6(bytes.fromhex(h))) for h in req["parse"]]
    json.dump({"built": build(), "parsed": parsed}, sys.stdout)


main()
