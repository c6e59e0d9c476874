"""The mapped custom fields: the agency-specific facts a connector reads from platform fields.

Which platform field (Jira `customfield_10042`, Bitrix24 `UF_CRM_...`) means which of these is
field-mapping configuration. A name absent from `Engagement.fields` is not mapped; a name
present with `None` is mapped but empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import fields


@dataclass(frozen=True)
class MappedField:
    name: str
    kind: str  # "text", "flag", "number", "date" or "list"
    description: str

    def marshmallow_field(self) -> fields.Field:
        field_type = {
            "text": fields.String,
            "flag": fields.Boolean,
            "number": fields.Float,
            "date": fields.Date,
        }.get(self.kind)
        if field_type is None:
            return fields.List(fields.String(), allow_none=True)
        return field_type(allow_none=True)


MAPPED_FIELDS: tuple[MappedField, ...] = (
    MappedField("brief", "text", "The agency's written brief, when kept in a field"),
    MappedField("brief_acknowledged", "flag", "The PM confirmed reading the brief"),
    MappedField("estimate_approved", "flag", "The client approved the estimate"),
    MappedField("contract_template", "text", "Id/version of the contract template used"),
    MappedField("contract_reviewed", "flag", "Legal reviewed the contract"),
    MappedField("prepayment_required", "flag", "This engagement's terms require prepayment"),
    MappedField("prepayment_received", "flag", "The prepayment has arrived"),
    MappedField("prepayment_received_on", "date", "The day the prepayment arrived"),
    MappedField("budget_hours", "number", "Hours budgeted for the engagement"),
    MappedField("manager_hours_budget", "number", "Hours planned for account/project managers"),
    MappedField("goals", "text", "The client's goals / KPIs"),
    MappedField("input_data", "text", "The client's input data: margins, average order, targets"),
    MappedField("goal_type", "text", "Kind of goal: sales, leads, awareness, ..."),
    MappedField("analytics_confirmed", "flag", "Web analytics confirmed working"),
    MappedField("call_tracking_confirmed", "flag", "Call tracking confirmed working"),
    MappedField("channels", "list", "Marketing channels sold: seo, content, ppc, ..."),
    MappedField("results_expected_on", "date", "When the client expects results"),
    MappedField("sale_date", "date", "When the engagement was sold"),
    MappedField("discount_requests", "number", "Discount requests recorded by the agency"),
    MappedField("payment_method", "text", "How the client pays: bank transfer, card, cash, ..."),
)

FIELDS_BY_NAME = {field.name: field for field in MAPPED_FIELDS}
