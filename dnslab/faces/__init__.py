"""What people touch: the command line and its inspection commands, the web view, and the
trace renderers (text, JSON, the HTML picture). Test suites use dnslab.testing instead.
"""
