"""The developer tools behind scripts/ (bench, reliability checks, comparisons): kept out of the installed
dnslab package, since they measure it from outside.

Each `scripts/NAME` is a thin entry point that runs `tools.NAME.main()` (`scripts/compare-nsd` and
`compare-unbound`: `tools.compare.nsd` and `.unbound`, which share `tools.compare.shared`); the parts the
tools share (child processes, a lab in a child process, reference servers, ports, questions, reports)
are written once in `tools.common`.  This package and `tools.common` (but `tools.common.asking`) import neither
dnspython nor dnslab: `scripts/bench` runs under any python3 and starts dnslab with the interpreter that
has its dependencies.
"""
