"""`python -m dnslab`: the same command line as the `dnslab` script."""

import sys

from dnslab.faces.cli import main

if __name__ == "__main__":
    sys.exit(main())
