"""Caches in front of the resolver: browser, operating system and forwarder levels (sans-I/O).

Each policy (`chromium`, `firefox`, `systemd`, `dnsmasq`) says only how long an
answer is kept, with the numbers read from that program's source (cited in
docs/LEVELS.md); `cache` keeps whole answers under a policy on an injected
clock; `failover` is the stub's order of servers and timeouts (glibc's
resolv.conf `timeout`, `attempts`, `rotate`).  The service that puts them on
the wire is dnslab.services.level.
"""
