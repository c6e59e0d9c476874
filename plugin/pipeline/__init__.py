"""From a platform delivery to a stored event (intake), and from stored events to an
evaluated engagement (processing, coming with the Jira pipeline)."""
