"""Example: one record change, seen by each cache in turn (docs/LEVELS.md).

The lab's default chain is browser (Chromium: 60 s whatever the TTL) -> OS stub (systemd-resolved: the
TTL it is given, capped at 2 h; here 120 s) -> the lab's resolver (the record's TTL, 300 s).  Each level
keeps what it was given for its own time, counted from when *it* last asked, on the lab's fake clock.
"""

from __future__ import annotations


def _resolver_sees(lab) -> list[str]:
    return sorted(r.to_text() for r in lab.resolver.resolve("www.example.com", "A"))


def test_a_record_change_reaches_the_resolver_then_the_os_stub_then_the_browser(make_dns_lab) -> None:
    lab = make_dns_lab(levels={"os": {"max_ttl": 120}})
    browser, stub = lab.level("browser"), lab.level("os")
    lab.record_set("www.example.com", "A", "192.0.2.10", ttl=300)
    assert browser.ask("www.example.com") == ["192.0.2.10"]     # t=0: all three keep it
    lab.record_set("www.example.com", "A", "192.0.2.99", ttl=300)

    lab.advance(120)                    # t=120: the OS stub's cap is up; it asks the resolver again...
    assert stub.ask("www.example.com") == ["192.0.2.10"]        # ...which still has 180 s of the old one

    lab.advance(179)                    # t=299: the browser asks (its 60 s ran out long ago)
    assert browser.ask("www.example.com") == ["192.0.2.10"]     # the stub still has it, for 1 s more

    lab.advance(1)                      # t=300: the resolver's TTL is up: it has the new record
    assert _resolver_sees(lab) == ["192.0.2.99"]
    assert stub.ask("www.example.com") == ["192.0.2.99"]        # the stub's copy (1 s) is gone too
    assert browser.ask("www.example.com") == ["192.0.2.10"]     # the browser keeps 60 s, whatever the TTL

    lab.advance(58)                     # t=358
    assert browser.ask("www.example.com") == ["192.0.2.10"]
    lab.advance(1)                      # t=359: 60 s after the browser last asked
    assert browser.ask("www.example.com") == ["192.0.2.99"]
