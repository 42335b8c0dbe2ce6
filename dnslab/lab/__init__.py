"""The running lab: the hierarchy derived from the zones, its servers with faults in front,
signed zones, the clock, and the control endpoint.
"""
