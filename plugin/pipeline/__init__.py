"""From a platform delivery to a stored event (intake), and from stored events to an
evaluated engagement (process, under a lease)."""


class LeaseLost(Exception):
    """Another worker holds the events now: this evaluation must write nothing and leave
    the events to it (`plugin.pipeline.lease`). Here, not there, so the command line can
    name it without loading the storage."""
