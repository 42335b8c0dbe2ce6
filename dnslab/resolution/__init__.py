"""Iterative resolution: classify replies, cache, server selection (infra), the iterator,
DNSSEC validation, root hints and the resolver's options.

Sans-I/O: asked for queries, told replies and timeouts; dnslab.services does the I/O.
"""
