"""The comparisons with the reference servers, asking both the same questions about the same zones:
`nsd` (dnslab's authoritative servers against NSD 4) and `unbound` (its recursive resolver against
Unbound). What they share (the zone folders, the run's frame, the kinds of finding and their report) is
in `shared`; `zones/` is their own hierarchy, with the cases the sample lab lacks.

Unlike the rest of `tools`, these import dnspython and dnslab: run them with dnslab's venv.
"""
