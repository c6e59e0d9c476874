"""The rule catalogue: every rule ClientGuard ships, in the order of product.md.

A new rule = one function in its family's module + one line here + its tests.
"""

from __future__ import annotations

from plugin.core.rule import Rule
from plugin.rules import (
    communication,
    documents,
    effort,
    expectations,
    leaks,
    ownership,
    payments,
    stakeholders,
)

CATALOGUE: tuple[Rule, ...] = (
    # Agency-side service quality
    ownership.single_point_of_contact,
    ownership.pm_briefed,
    documents.transparent_estimate,
    documents.contract_reviewed,
    communication.client_answered,
    communication.regular_updates,
    communication.consistent_deadlines,
    leaks.no_internal_leak,
    effort.service_cost,
    # Client-side risk signals
    payments.prepayment,
    payments.overdue_invoices,
    expectations.goals_defined,
    expectations.analytics_in_place,
    expectations.realistic_timeline,
    payments.discount_pressure,
    payments.official_payment,
    effort.meeting_load,
    stakeholders.decision_maker,
)

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in CATALOGUE}
