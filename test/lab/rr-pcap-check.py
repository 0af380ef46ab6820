"""Independent check of return routability from a mip6 --pcap capture (run with /usr/bin/python3).

argv[1]: a pcap (LINKTYPE_RAW, inner IPv6 packets) written by the mobile node.
For every Binding Update to a correspondent (MH type 5 carrying Nonce Indices + Binding
Authorization Data) it finds the Home Test and Care-of Test whose nonce indices the BU names
(the latest before the BU), computes with Python's own hashlib/hmac
    Kbm  = SHA1(home keygen token | care-of keygen token)       (RFC 6275 section 5.2.5)
    auth = First(96, HMAC_SHA1(Kbm, CoA | CN | MH data, checksum zeroed, without the 12 bytes))
and compares auth with the 12 bytes mip6 sent. The BA's authenticator from the CN is checked
the same way. Prints JSON: {"bus": [...], "bas": [...]} with one verdict per message.
"""
import hashlib
import hmac
import ipaddress
import json
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def parse(p):
    """-> (src, dst, hao, rh2, mh bytes) or None."""
    if len(p) < 40 or p[0] >> 4 != 6:
        return None
    nh, src, dst = p[6], p[8:24], p[24:40]
    off, hao, rh2 = 40, None, None
    end = 40 + struct.unpack(">H", p[4:6])[0]
    while nh in (0, 43, 60) and off + 8 <= end:
        hl = (p[off + 1] + 1) * 8
        if nh == 43 and p[off + 2] == 2:
            rh2 = p[off + 8:off + 24]
        if nh == 60:
            o = off + 2
            while o < off + hl:
                if p[o] == 0:
                    o += 1
                    continue
                if p[o] == 201:
                    hao = p[o + 2:o + 18]
                o += 2 + p[o + 1]
        nh = p[off]
        off += hl
    if nh != 135:
        return None
    mh = p[off:off + (p[off + 1] + 1) * 8]
    return src, dst, hao, rh2, mh


def options(mh, start):
    out, o = {}, start
    while o < len(mh):
        if mh[o] == 0:
            o += 1
            continue
        out[mh[o]] = (o, mh[o + 2:o + 2 + mh[o + 1]])
        o += 2 + mh[o + 1]
    return out


def authenticator(kbm, coa, cn, mh):
    data = bytearray(mh[:-12])
    data[4:6] = b"\x00\x00"
    return hmac.new(kbm, coa + cn + bytes(data), hashlib.sha1).digest()[:12]


def main():
    hots, cots, bus, bas = {}, {}, [], []
    last_kbm = {}
    for p in packets(sys.argv[1]):
        r = parse(p)
        if r is None:
            continue
        src, dst, hao, rh2, mh = r
        t = mh[2]
        if t == 3:
            hots[struct.unpack(">H", mh[6:8])[0]] = mh[16:24]
        elif t == 4:
            cots[struct.unpack(">H", mh[6:8])[0]] = mh[16:24]
        elif t == 5:
            opts = options(mh, 12)
            if 4 not in opts or 5 not in opts:
                continue
            hni, coni = struct.unpack(">HH", opts[4][1])
            life = struct.unpack(">H", mh[10:12])[0]
            coa = src
            home = hots.get(hni)
            care = cots.get(coni)
            if home is None or (life != 0 and care is None):
                bus.append({"seq": struct.unpack(">H", mh[6:8])[0], "ok": False, "why": "tokens not captured"})
                continue
            kbm = hashlib.sha1(home + (care if life != 0 else b"")).digest()
            want = authenticator(kbm, coa, dst, mh)
            last_kbm[(bytes(coa), bytes(dst))] = kbm
            bus.append({
                "seq": struct.unpack(">H", mh[6:8])[0],
                "coa": str(ipaddress.IPv6Address(bytes(coa))),
                "hoa": str(ipaddress.IPv6Address(bytes(hao))) if hao else None,
                "kbm": kbm.hex(),
                "sent": mh[-12:].hex(),
                "computed": want.hex(),
                "ok": hmac.compare_digest(want, mh[-12:]),
            })
        elif t == 6:
            opts = options(mh, 12)
            if 5 not in opts:
                continue
            # BA from the CN: CoA is the IPv6 destination (RH2 carries the HoA), CN the source.
            kbm = last_kbm.get((bytes(dst), bytes(src)))
            if kbm is None:
                continue
            want = authenticator(kbm, dst, src, mh)
            bas.append({"status": mh[6], "ok": hmac.compare_digest(want, mh[-12:])})
    print(json.dumps({"bus": bus, "bas": bas}))


main()
