"""dnslab: a private DNS hierarchy (root, TLD and authoritative servers) on loopback."""

from dnslab.core.names import install as _install_name_hash

__version__ = "0.1.0"

_install_name_hash()  # dnspython's Name hash, computed once per name (see dnslab.core.names)
