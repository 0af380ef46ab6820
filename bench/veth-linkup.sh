#!/bin/bash
# How long after `ip link set DEV up` does the first UDP datagram get through a veth pair whose
# other end stayed up? No mip6 involved: the lab's access links are veths, and the MN's first
# packets on a new link (its BU among them) wait for ARP. Two throwaway namespaces (deleted on
# exit), 192.0.2.0/24 only, 5 rounds of at most 4 s of 5 ms datagrams each. Needs root.
#   bench/veth-linkup.sh
# Prints per round when the first datagram that arrived had been sent, relative to the sender's
# start right after the link-up: 0 on a quiet machine; on this 2-core box under load ~9 (other
# work, 2026-11-29) the first 1.4-4.7 s of datagrams were lost, ARP included.
set -eu
A=vlu-a-$$; B=vlu-b-$$
ip netns add "$A"; ip netns add "$B"
trap 'ip netns del "$A"; ip netns del "$B"' EXIT
ip link add va netns "$A" type veth peer name vb netns "$B"
ip -n "$B" addr add 192.0.2.2/24 dev vb; ip -n "$B" link set vb up
ip -n "$A" addr add 192.0.2.1/24 dev va; ip -n "$A" link set va up
sleep 1.5
for r in 1 2 3 4 5; do
  ip -n "$A" link set va down
  ip netns exec "$B" timeout 10 /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.2", 9999)); s.settimeout(8)
sys.stdout.write("ready\n"); sys.stdout.flush()
try:
    d, _ = s.recvfrom(100); print("round '"$r"': first datagram that arrived was sent %s ms after link up" % d.decode())
except OSError:
    print("round '"$r"': nothing arrived")
' | { read -r _; ip -n "$A" link set va up
      ip netns exec "$A" /usr/bin/python3 -c '
import socket, time
t0 = time.monotonic(); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while time.monotonic() - t0 < 4:
    s.sendto(str(round((time.monotonic() - t0) * 1000)).encode(), ("192.0.2.2", 9999)); time.sleep(0.005)
'
      cat; }
done
