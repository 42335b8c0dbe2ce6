"""What the tools in scripts/ share, written once.

- `procs`: a child in a session of its own, stopped by process group with a bounded wait; /proc figures.
- `lab`: `dnslab up` as a child process with a private state file, waited for until its ready line.
- `reference`: Unbound and NSD with generated configs; finding (or apt-installing) a tool.
- `net`: free ports, a socket's drop counter, hand-made queries for tools that need no DNS library.
- `asking`: one question with dnspython (imports dnspython: only for tools run with dnslab's venv).
- `report`: progress lines, tables and the tail of a log.
- `logcount`: a logging handler counting what a lab logs, errors grouped by kind.

A lab in the tool's own process is `dnslab.testing.LabRunner` (a Lab on a loop in a thread), not
written again here.
"""
