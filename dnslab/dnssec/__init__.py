"""DNSSEC material: zone keys, signing (RRSIG, NSEC, NSEC3, DS) and trust anchors.

Sans-I/O. Validation is part of resolution: dnslab.resolution.validator.
"""
