"""transparent-estimate and contract-reviewed: the paperwork before work starts.

NOW is Friday 2026-11-20 12:00 UTC; the base engagement started 40 days earlier, on
2026-10-11 12:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import ValidationError

from plugin.core.model import DocumentKind, Engagement, StatusCategory, Visibility
from plugin.core.rule import Status
from plugin.rules.documents import contract_reviewed, transparent_estimate
from tests.builders import (
    ACCOUNT_MANAGER,
    CLIENT_BOSS,
    NOW,
    PROJECT_MANAGER,
    STRANGER,
    ago,
    change,
    comment,
    document,
    engagement,
    invoice,
    not_started,
)
from tests.rules.checking import assert_outcome, check

PASS, WARN, FAIL, NOT_CONFIGURED = (Status.PASS, Status.WARN, Status.FAIL,
                                    Status.NOT_CONFIGURED)








# --- transparent-estimate ----------------------------------------------------------------

def estimate(days: float = 45, **extra: Any):
    return document(DocumentKind.ESTIMATE, ago(days), name=extra.pop("name", "Estimate.pdf"),
                    **extra)


ESTIMATED = (estimate(),)
CHANGE_REQUEST = comment(CLIENT_BOSS, ago(5), "Can we add a blog? Happy to pay as a change "
                                              "request.")

ESTIMATE_CASES = [
    pytest.param(engagement(documents=ESTIMATED), {}, NOW, PASS, [],
                 id="estimate before start, approval not tracked"),
    pytest.param(engagement(documents=(estimate(approved=True),)), {}, NOW, PASS, [],
                 id="approved on the document"),
    pytest.param(engagement(documents=ESTIMATED, fields={"estimate_approved": True}), {}, NOW,
                 PASS, [], id="approved in the field"),
    pytest.param(engagement(documents=(estimate(40),)), {}, NOW, PASS, [],
                 id="estimate exactly at the start"),
    pytest.param(engagement(documents=(estimate(line_items=30),)), {}, NOW, PASS, [],
                 id="30 line items: at the limit"),
    pytest.param(engagement(documents=(estimate(line_items=50), estimate(10, line_items=8))),
                 {}, NOW, PASS, [], id="over-detailed first version, short latest one"),
    pytest.param(not_started(), {}, NOW, PASS, [], id="not started, no estimate yet"),
    pytest.param(not_started(fields={"estimate_approved": None}), {}, NOW, PASS, [],
                 id="not started, approval empty"),
    pytest.param(engagement(documents=(*ESTIMATED, estimate(3, name="Estimate v2.pdf")),
                            comments=(CHANGE_REQUEST,)),
                 {}, NOW, PASS, [], id="extra charge followed by an updated estimate"),
    pytest.param(engagement(documents=ESTIMATED,
                            comments=(comment(CLIENT_BOSS, ago(35), "Change request: blog"),)),
                 {}, NOW, PASS, [], id="extra charge outside the 30-day window"),
    pytest.param(engagement(documents=ESTIMATED,
                            comments=(comment(STRANGER, ago(5), "Extra cost is fine"),)),
                 {}, NOW, PASS, [], id="unknown person's comment does not count"),
    pytest.param(engagement(documents=ESTIMATED,
                            comments=(comment(CLIENT_BOSS, ago(0, -3), "Change request"),)),
                 {}, NOW, PASS, [], id="extra charge after now is outside the window"),
    pytest.param(engagement(documents=ESTIMATED,
                            comments=(comment(CLIENT_BOSS, ago(5), "Thanks, all good"),)),
                 {}, NOW, PASS, [], id="ordinary comment"),
    pytest.param(engagement(), {}, NOW, FAIL, ["no_estimate"], id="work started, no estimate"),
    pytest.param(engagement(documents=(document(DocumentKind.OTHER, ago(45)),)), {}, NOW,
                 FAIL, ["no_estimate"], id="another document is not an estimate"),
    pytest.param(engagement(documents=(estimate(39),)), {}, NOW, FAIL, ["estimate_late"],
                 id="estimate added after work started"),
    pytest.param(engagement(documents=(estimate(approved=False),)), {}, NOW, FAIL,
                 ["not_approved"], id="client has not approved (document)"),
    pytest.param(engagement(documents=ESTIMATED, fields={"estimate_approved": False}), {},
                 NOW, FAIL, ["not_approved"], id="client has not approved (field)"),
    pytest.param(engagement(documents=ESTIMATED, fields={"estimate_approved": None}), {},
                 NOW, FAIL, ["not_approved"], id="approval field mapped but empty"),
    pytest.param(engagement(documents=(estimate(line_items=31),)), {}, NOW, WARN,
                 ["over_detailed"], id="31 line items"),
    pytest.param(not_started(documents=(estimate(line_items=31),)), {}, NOW, WARN,
                 ["over_detailed"], id="over-detailed before work starts"),
    pytest.param(engagement(documents=(estimate(line_items=12),)), {"max_line_items": 10},
                 NOW, WARN, ["over_detailed"], id="custom line-item limit"),
    pytest.param(engagement(documents=ESTIMATED, comments=(CHANGE_REQUEST,)), {}, NOW, WARN,
                 ["extra_charges"], id="change request with no updated estimate"),
    pytest.param(engagement(documents=ESTIMATED, comments=(
        comment(ACCOUNT_MANAGER, ago(2), "Срочность — доплата 20 %.", Visibility.INTERNAL),)),
                 {}, NOW, WARN, ["extra_charges"], id="Russian marker in an internal note"),
    pytest.param(engagement(documents=ESTIMATED, comments=(
        comment(PROJECT_MANAGER, ago(2), "Det bliver ekstraarbejde."),)),
                 {}, NOW, WARN, ["extra_charges"], id="Danish marker"),
    pytest.param(engagement(documents=ESTIMATED,
                            changes=(change("extra_costs", ago(4), "Extra charge: 5000 DKK"),)),
                 {}, NOW, WARN, ["extra_charges"], id="marker in a changed field"),
    pytest.param(engagement(documents=ESTIMATED,
                            comments=(comment(CLIENT_BOSS, ago(4), "Tilkøb af logo"),)),
                 {"extra_charge_markers": ["tilkøb"]}, NOW, WARN, ["extra_charges"],
                 id="custom marker"),
    pytest.param(engagement(documents=(estimate(approved=False, line_items=40),),
                            comments=(CHANGE_REQUEST,)),
                 {}, NOW, FAIL, ["not_approved", "over_detailed", "extra_charges"],
                 id="not approved, over-detailed and extra charges"),
]


@pytest.mark.parametrize(("e", "settings", "now", "status", "expected"), ESTIMATE_CASES)
def test_transparent_estimate(e: Engagement, settings: dict[str, Any], now: datetime,
                              status: Status, expected: list[str]) -> None:
    assert_outcome(check(transparent_estimate, e, settings, now), status, expected)


def test_no_estimate_evidence() -> None:
    (reason,) = check(transparent_estimate, engagement()).reasons
    assert reason.render("en") == "Work started on 2026-10-11 12:00 UTC without an estimate " \
                                  "attached."


def test_extra_charges_evidence() -> None:
    e = engagement(documents=ESTIMATED, comments=(CHANGE_REQUEST,))
    (reason,) = check(transparent_estimate, e).reasons
    assert reason.params["when"] == "2026-11-15 12:00 UTC"
    assert "change request" in reason.params["excerpt"]


def test_over_detailed_evidence() -> None:
    e = engagement(documents=(estimate(line_items=31, name="Detailed.xlsx"),))
    (reason,) = check(transparent_estimate, e).reasons
    assert reason.params == {"name": "Detailed.xlsx", "count": 31, "limit": 30}


@pytest.mark.parametrize("markers", [["("], ["extra [cost"]], ids=["paren", "bracket"])
def test_invalid_marker_pattern_is_a_settings_error(markers: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        transparent_estimate.settings().load({"extra_charge_markers": markers})
    assert "extra_charge_markers" in caught.value.messages_dict


# --- contract-reviewed -------------------------------------------------------------------

REVIEWED = {"reviewed_templates": ["MSA-2025"]}


def contract(days: float = 45, **extra: Any):
    return document(DocumentKind.CONTRACT, ago(days), name=extra.pop("name", "Contract.pdf"),
                    **extra)


FROM_TEMPLATE = contract(template_id="MSA-2025")
NOV_10 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)

CONTRACT_CASES = [
    pytest.param(engagement(documents=(FROM_TEMPLATE,)), REVIEWED, PASS, [],
                 id="made from a reviewed template"),
    pytest.param(engagement(documents=(contract(reviewed_by_legal=True),)), {}, PASS, [],
                 id="reviewed by legal (document)"),
    pytest.param(engagement(documents=(contract(),), fields={"contract_reviewed": True}), {},
                 PASS, [], id="reviewed by legal (field)"),
    pytest.param(engagement(documents=(contract(),), fields={"contract_template": "MSA-2025"}),
                 REVIEWED, PASS, [], id="template in the field"),
    pytest.param(engagement(documents=(contract(50), contract(44, template_id="MSA-2025"))),
                 REVIEWED, PASS, [], id="a later reviewed version"),
    pytest.param(engagement(documents=(contract(40, template_id="MSA-2025"),)), REVIEWED,
                 PASS, [], id="contract exactly at the start"),
    pytest.param(not_started(), REVIEWED, PASS, [], id="not started, not invoiced"),
    pytest.param(not_started(invoices=()), REVIEWED, PASS, [],
                 id="not started, no invoices yet"),
    pytest.param(not_started(invoices=(invoice("1000", NOV_10),),
                             documents=(contract(12, template_id="MSA-2025"),)),
                 REVIEWED, PASS, [], id="not started, contract before the invoice"),
    pytest.param(not_started(invoices=(invoice("1000", NOV_10),),
                             documents=(document(DocumentKind.CONTRACT,
                                                 datetime(2026, 11, 10, 15, 0, tzinfo=UTC),
                                                 template_id="MSA-2025"),)),
                 REVIEWED, PASS, [], id="contract on the invoice's issue day"),
    pytest.param(engagement(documents=(contract(),)), {}, NOT_CONFIGURED,
                 ["no_review_source"], id="no template list, no legal flag"),
    pytest.param(engagement(documents=(contract(),), fields={"contract_template": "X-1"}), {},
                 NOT_CONFIGURED, ["no_review_source"],
                 id="template known but no reviewed list"),
    pytest.param(engagement(), {}, FAIL, ["no_contract"],
                 id="no contract (even with no review source)"),
    pytest.param(engagement(documents=(document(DocumentKind.OTHER, ago(45)),)), REVIEWED,
                 FAIL, ["no_contract"], id="another document is not a contract"),
    pytest.param(not_started(invoices=(invoice("1000", NOV_10),)), REVIEWED, FAIL,
                 ["no_contract"], id="not started but invoiced, no contract"),
    pytest.param(engagement(documents=(contract(39, template_id="MSA-2025"),)), REVIEWED,
                 FAIL, ["contract_late"], id="contract after work started"),
    pytest.param(not_started(invoices=(invoice("1000", NOV_10),),
                             documents=(contract(9, template_id="MSA-2025"),)),
                 REVIEWED, FAIL, ["contract_late"], id="contract the day after the invoice"),
    pytest.param(engagement(invoices=(invoice("1000", ago(50)),),
                            documents=(contract(45, template_id="MSA-2025"),)),
                 REVIEWED, FAIL, ["contract_late"],
                 id="invoiced before work started, contract in between"),
    pytest.param(engagement(documents=(contract(template_id="found-online"),)), REVIEWED,
                 FAIL, ["unreviewed"], id="template not on the list"),
    pytest.param(engagement(documents=(contract(reviewed_by_legal=False),)), {}, FAIL,
                 ["unreviewed"], id="legal flag says not reviewed"),
    pytest.param(engagement(documents=(contract(),), fields={"contract_reviewed": None}), {},
                 FAIL, ["unreviewed"], id="legal field mapped but empty"),
    pytest.param(engagement(documents=(contract(),), fields={"contract_template": "random"}),
                 REVIEWED, FAIL, ["unreviewed"], id="field template not on the list"),
    pytest.param(engagement(status="Done", status_category=StatusCategory.DONE,
                            status_history=(), documents=(contract(55),)),
                 {}, FAIL, ["contract_late"],
                 id="done with no history: started when created, contract later"),
]


@pytest.mark.parametrize(("e", "settings", "status", "expected"), CONTRACT_CASES)
def test_contract_reviewed(e: Engagement, settings: dict[str, Any], status: Status,
                           expected: list[str]) -> None:
    assert_outcome(check(contract_reviewed, e, settings), status, expected)


def test_no_contract_evidence_work_started() -> None:
    (reason,) = check(contract_reviewed, engagement()).reasons
    assert reason.render("en") == ("No contract is attached, and work started on "
                                   "2026-10-11 12:00 UTC.")
    assert reason.render("da") == ("Der er ingen kontrakt vedhæftet, og arbejdet startede "
                                   "2026-10-11 12:00 UTC.")


def test_contract_late_evidence_invoice() -> None:
    e = not_started(invoices=(invoice("1000", NOV_10),),
                    documents=(contract(9, name="MSA.pdf", template_id="MSA-2025"),))
    (reason,) = check(contract_reviewed, e, REVIEWED).reasons
    assert reason.render("en") == ("The contract “MSA.pdf” was added on 2026-11-11 12:00 UTC, "
                                   "after the first invoice was issued on 2026-11-10.")


def test_unreviewed_evidence_names_template() -> None:
    e = engagement(documents=(contract(template_id="found-online", name="Deal.docx"),))
    (reason,) = check(contract_reviewed, e, REVIEWED).reasons
    assert reason.params == {"name": "Deal.docx", "template": "found-online"}
    e = engagement(documents=(contract(reviewed_by_legal=False, name="Deal.docx"),))
    (reason,) = check(contract_reviewed, e).reasons
    assert reason.params == {"name": "Deal.docx", "template": "—"}
