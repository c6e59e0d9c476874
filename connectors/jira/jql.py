"""Narrowing the agency's `engagement_jql` with a condition of ours."""

from __future__ import annotations

import re

from connectors.jira.settings import JiraSettings

_ORDER_BY = re.compile(r"\s*\bORDER\s+BY\b.*\Z", re.IGNORECASE | re.DOTALL)


def narrowed(engagement_jql: str, condition: str) -> str:
    """`(engagement_jql) AND condition`, with the agency's ORDER BY, if any, kept last;
    just `condition` when no engagement JQL is configured."""
    order = _ORDER_BY.search(engagement_jql)
    restriction = (engagement_jql[:order.start()] if order else engagement_jql).strip()
    jql = f"({restriction}) AND {condition}" if restriction else condition
    return f"{jql} {order.group().strip()}" if order else jql


NOT_DONE = "statusCategory != Done"


def open_engagements_jql(settings: JiraSettings) -> str:
    """`[jira] engagement_jql` narrowed to issues that are not done; its ORDER BY, if any,
    stays last. Without `engagement_jql`: every issue not done."""
    return narrowed(settings.engagement_jql, NOT_DONE)
