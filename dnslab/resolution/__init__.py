"""Iterative resolution: classify replies, cache, server selection (infra), the iterator,
DNSSEC validation and its verdicts, the answer policy (ACL, serve-stale, the SERVFAIL cache),
the client's reply, root hints and the resolver's options.

Sans-I/O: asked for queries, told replies and timeouts; dnslab.services does the I/O.
"""
