"""Thin HTTP views: every decision is made in `plugin.pipeline` or a connector."""
