#!/usr/bin/python3
"""Charts for bench/compare.ts: /usr/bin/python3 bench/plot.py bench/results/<date>.json

Writes <date>-throughput.png (TCP 1 and 4 streams per system: median bars, min-max whiskers) and
<date>-handover.png (interruption per move and direction per system, log scale) next to the JSON.
Uses Debian's python3-matplotlib (headless Agg backend); no network, no other dependency.
"""
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

SYSTEMS = ["mip6", "wireguard", "openvpn", "raw"]
NAMES = {"mip6": "mip6", "wireguard": "WireGuard\n(wireguard-go)", "openvpn": "OpenVPN", "raw": "raw underlay\n(no tunnel)"}
COLORS = {"mip6": "#1f77b4", "wireguard": "#2ca02c", "openvpn": "#d62728", "raw": "#7f7f7f"}


def spread(xs):
    xs = [x for x in xs if x is not None and x == x]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs)


def throughput(data, out):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.38
    for k, key in enumerate(["tcp1", "tcp4"]):
        for i, sys_ in enumerate(SYSTEMS):
            s = spread([r[key]["gbps"] for r in data["runs"] if r["system"] == sys_ and key in r])
            if s is None:
                continue
            med, lo, hi = s
            x = i + (k - 0.5) * width
            ax.bar(x, med, width, color=COLORS[sys_], alpha=1.0 if k == 0 else 0.55,
                   yerr=[[med - lo], [hi - med]], capsize=3)
            ax.annotate(f"{med:.2f}", (x, med), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(SYSTEMS)), [NAMES[s] for s in SYSTEMS])
    ax.set_ylabel("Gbit/s (median, whiskers min-max)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.01)
    ax.set_title(f"TCP throughput MN -> server through the tunnel ({data['date'][:10]}, "
                 f"load {data['load']['before'][0]:.1f})")
    ax.legend(handles=[Patch(color="#444444", label="1 stream"),
                       Patch(color="#444444", alpha=0.45, label="4 streams")],
              loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def handover(data, out):
    variants = []
    for h in data["handover"]:
        if h["variant"] not in variants:
            variants.append(h["variant"])
    moves = [("hotel", "LTE -> hotel NAT"), ("v6only", "hotel -> IPv6-only"), ("lte", "IPv6-only -> LTE")]
    colors = {"mip6": "#1f77b4", "wireguard": "#2ca02c", "wireguard-keepalive": "#98df8a", "openvpn": "#d62728"}
    fig, ax = plt.subplots(figsize=(9, 4.8))
    n = max(1, len(variants))
    width = 0.8 / (2 * n)
    for vi, v in enumerate(variants):
        for di, (dkey, dname) in enumerate([("downMs", "server->MN"), ("upMs", "MN->server")]):
            for mi, (mkey, _) in enumerate(moves):
                xs = [m[dkey] for h in data["handover"] if h["variant"] == v for m in h["moves"] if m["move"] == mkey]
                s = spread(xs)
                if s is None:
                    continue
                med, lo, hi = s
                x = mi - 0.4 + width * (2 * vi + di + 0.5)
                ax.bar(x, max(med, 1), width, color=colors.get(v, "#333"), alpha=1.0 if di == 0 else 0.55,
                       yerr=[[max(med, 1) - max(lo, 1)], [hi - med]], capsize=2,
                       label=f"{v} {dname}" if mi == 0 else None)
    ax.set_xticks(range(len(moves)), [m[1] for m in moves])
    ax.set_yscale("log")
    ax.set_ylabel("interruption, ms (median, whiskers min-max)")
    ax.set_title(f"Handover: TCP stream interruption per move ({data['date'][:10]})")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    path = sys.argv[1]
    with open(path) as f:
        data = json.load(f)
    base = path[:-5] if path.endswith(".json") else path
    if any("tcp1" in r for r in data["runs"]):
        throughput(data, f"{base}-throughput.png")
    if any(h["moves"] for h in data["handover"]):
        handover(data, f"{base}-handover.png")


if __name__ == "__main__":
    main()
