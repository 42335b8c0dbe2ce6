"""Authoritative answers: the RFC 1034 lookup in a zone and the wire-in, wire-out server.

Sans-I/O: the lab (dnslab.lab.runtime) puts a listener and faults in front of it.
"""
