"""dnslab: a private DNS hierarchy (root, TLD and authoritative servers) on loopback."""

__version__ = "0.1.0"
