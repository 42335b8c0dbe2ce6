"""The I/O: UDP and TCP listeners, the upstream exchange, the recursive service (and the
interface its observers subscribe through), the dig-like client. The only packages below the
lab that use sockets and asyncio.
"""
