"""The DNS vocabulary and wire facts: errors, clock, trace events, wire constants, zones.

The ground floor: imports nothing else of dnslab, and never a socket or asyncio.
"""
