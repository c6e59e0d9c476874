"""single-point-of-contact and pm-briefed: who is in charge of the client.

NOW is Friday 2026-11-20 12:00 UTC; the base engagement started 40 days earlier, on
2026-10-11 12:00 UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from plugin.core.model import (
    Comment,
    DocumentKind,
    Engagement,
    Person,
    Roles,
    StatusCategory,
    Visibility,
)
from plugin.core.rule import Status
from plugin.rules.ownership import pm_briefed, single_point_of_contact
from tests.builders import (
    ACCOUNT_MANAGER,
    CLIENT_BOSS,
    CLIENT_MARKETER,
    DESIGNER,
    DEVELOPER,
    INTERN,
    NOW,
    PROJECT_MANAGER,
    STRANGER,
    ago,
    comment,
    document,
    engagement,
    not_started,
)
from tests.rules.checking import assert_outcome, check

PASS, WARN, FAIL, NOT_CONFIGURED = (Status.PASS, Status.WARN, Status.FAIL,
                                    Status.NOT_CONFIGURED)








def asked_and_answered(by: Person, days: float, asker: Person = CLIENT_BOSS,
                       visibility: Visibility = Visibility.PUBLIC,
                       reply_hours: float = 2) -> tuple[Comment, Comment]:
    """A client comment `days` before NOW and `by`'s comment `reply_hours` later."""
    return (comment(asker, ago(days), "Any news?"),
            comment(by, ago(days, -reply_hours), "Yes, here it is.", visibility))


def thread(*pairs: tuple[Comment, Comment]) -> tuple[Comment, ...]:
    return tuple(c for pair in pairs for c in pair)


FOUR_RESPONDERS = thread(
    asked_and_answered(ACCOUNT_MANAGER, 20),
    asked_and_answered(PROJECT_MANAGER, 15),
    asked_and_answered(DEVELOPER, 10),
    asked_and_answered(DESIGNER, 5),
)
THREE_RESPONDERS = FOUR_RESPONDERS[:6]

# --- single-point-of-contact -------------------------------------------------------------

CONTACT_CASES = [
    pytest.param(engagement(), {}, NOW, PASS, [], id="one contact, empty history"),
    pytest.param(engagement(comments=THREE_RESPONDERS), {}, NOW, PASS, [],
                 id="three responders: at the limit"),
    pytest.param(engagement(roles=Roles(points_of_contact=(ACCOUNT_MANAGER, ACCOUNT_MANAGER))),
                 {}, NOW, PASS, [], id="the same person listed twice"),
    pytest.param(engagement(roles=Roles(points_of_contact=None)), {}, NOW, NOT_CONFIGURED,
                 ["not_mapped"], id="field not mapped"),
    pytest.param(engagement(roles=Roles(points_of_contact=())), {}, NOW, FAIL,
                 ["no_contact"], id="nobody named"),
    pytest.param(not_started(roles=Roles(points_of_contact=())), {}, NOW, FAIL,
                 ["no_contact"], id="nobody named, not started yet: still a finding"),
    pytest.param(engagement(roles=Roles(points_of_contact=(ACCOUNT_MANAGER, PROJECT_MANAGER))),
                 {}, NOW, FAIL, ["several_contacts"], id="two contacts"),
    pytest.param(engagement(comments=FOUR_RESPONDERS), {}, NOW, WARN, ["many_responders"],
                 id="four responders: over the limit"),
    pytest.param(engagement(comments=FOUR_RESPONDERS,
                            roles=Roles(points_of_contact=(ACCOUNT_MANAGER, DEVELOPER))),
                 {}, NOW, FAIL, ["several_contacts", "many_responders"],
                 id="two contacts and four responders"),
    pytest.param(engagement(comments=THREE_RESPONDERS[:4]), {"max_responders": 1}, NOW, WARN,
                 ["many_responders"], id="limit 1, two responders"),
    pytest.param(engagement(comments=(*THREE_RESPONDERS,
                                      *asked_and_answered(DESIGNER, 31))),
                 {}, NOW, PASS, [], id="fourth responder outside the 30-day window"),
    pytest.param(engagement(comments=FOUR_RESPONDERS), {"window_days": 12}, NOW, PASS, [],
                 id="shorter window keeps only two responders"),
    pytest.param(engagement(comments=(*THREE_RESPONDERS,
                                      *asked_and_answered(DESIGNER, 5,
                                                          visibility=Visibility.INTERNAL))),
                 {}, NOW, PASS, [], id="internal note is not an answer to the client"),
    pytest.param(engagement(comments=(*THREE_RESPONDERS,
                                      *asked_and_answered(STRANGER, 5))),
                 {}, NOW, PASS, [], id="unknown person's reply does not count"),
    pytest.param(engagement(comments=(*THREE_RESPONDERS,
                                      *asked_and_answered(DESIGNER, 5, asker=STRANGER))),
                 {}, NOW, PASS, [], id="answer to an unknown person is not a client answer"),
    pytest.param(engagement(comments=tuple(comment(p, ago(d)) for d, p in enumerate(
        (ACCOUNT_MANAGER, PROJECT_MANAGER, DEVELOPER, DESIGNER, INTERN), start=1))),
                 {}, NOW, PASS, [], id="agency talking with no client comment"),
    pytest.param(engagement(comments=(*THREE_RESPONDERS,
                                      *asked_and_answered(DESIGNER, 0.5, reply_hours=24))),
                 {}, NOW, PASS, [], id="reply after now is outside the window"),
    pytest.param(engagement(comments=thread(
        asked_and_answered(ACCOUNT_MANAGER, 20), asked_and_answered(ACCOUNT_MANAGER, 15),
        asked_and_answered(ACCOUNT_MANAGER, 10, asker=CLIENT_MARKETER),
        asked_and_answered(ACCOUNT_MANAGER, 5))),
                 {}, NOW, PASS, [], id="one person answering everything"),
]


@pytest.mark.parametrize(("e", "settings", "now", "status", "expected"), CONTACT_CASES)
def test_single_point_of_contact(e: Engagement, settings: dict[str, Any], now: datetime,
                                 status: Status, expected: list[str]) -> None:
    assert_outcome(check(single_point_of_contact, e, settings, now), status, expected)


def test_several_contacts_evidence_counts_distinct_people() -> None:
    e = engagement(roles=Roles(points_of_contact=(ACCOUNT_MANAGER, PROJECT_MANAGER,
                                                  ACCOUNT_MANAGER)))
    (reason,) = check(single_point_of_contact, e).reasons
    assert reason.params == {"count": 2, "people": "Anna Account, Peter Project"}
    assert reason.render("en") == ("2 people are named as the client's point of contact: "
                                   "Anna Account, Peter Project.")


def test_many_responders_evidence() -> None:
    (reason,) = check(single_point_of_contact, engagement(comments=FOUR_RESPONDERS)).reasons
    assert reason.params == {
        "days": 30, "count": 4, "limit": 3,
        "people": "Anna Account, Dina Developer, Dmitri Designer, Peter Project",
    }


def test_point_of_contact_defaults() -> None:
    assert single_point_of_contact.settings.defaults() == (
        single_point_of_contact.settings().load({"max_responders": 3, "window_days": 30})
    )


# --- pm-briefed --------------------------------------------------------------------------

STARTED = ago(40)  # 2026-10-11 12:00 UTC
BRIEF = document(DocumentKind.BRIEF, ago(45), name="Brief v1.docx")
ACK = comment(PROJECT_MANAGER, ago(42), "Read the brief, all clear.", Visibility.INTERNAL)
BRIEFED = {"documents": (BRIEF,), "comments": (ACK,)}

PM_CASES = [
    pytest.param(engagement(**BRIEFED), {}, PASS, [],
                 id="brief before start, PM comment after it"),
    pytest.param(engagement(documents=(BRIEF,), fields={"brief_acknowledged": True}), {}, PASS,
                 [], id="brief + acknowledged checkbox"),
    pytest.param(engagement(fields={"brief": "Goals: ...", "brief_acknowledged": True}), {},
                 PASS, [], id="brief in a field + checkbox"),
    pytest.param(engagement(fields={"brief": "Goals: ..."}, comments=(ACK,)), {}, PASS, [],
                 id="brief in a field + PM comment before start"),
    pytest.param(engagement(documents=(BRIEF,)), {"require_acknowledgement": False}, PASS, [],
                 id="acknowledgement not required"),
    pytest.param(engagement(documents=(document(DocumentKind.BRIEF, STARTED),),
                            comments=(comment(PROJECT_MANAGER, STARTED),)),
                 {}, PASS, [], id="brief and acknowledgement exactly at the start"),
    pytest.param(engagement(documents=(document(DocumentKind.BRIEF, ago(45), author=None),),
                            comments=(ACK,)),
                 {}, PASS, [], id="brief whose uploader the platform does not record"),
    pytest.param(engagement(documents=(document(DocumentKind.BRIEF, ago(50), CLIENT_BOSS),
                                       BRIEF), comments=(ACK,)),
                 {}, PASS, [], id="client brief plus the agency's own"),
    pytest.param(not_started(roles=Roles(points_of_contact=(ACCOUNT_MANAGER,),
                                         project_managers=())),
                 {}, PASS, [], id="not started: no PM yet is fine"),
    pytest.param(not_started(), {}, PASS, [], id="not started: no brief yet is fine"),
    pytest.param(engagement(roles=Roles(points_of_contact=(ACCOUNT_MANAGER,))), {},
                 NOT_CONFIGURED, ["not_mapped"], id="PM field not mapped"),
    pytest.param(engagement(roles=Roles(points_of_contact=(ACCOUNT_MANAGER,),
                                        project_managers=())),
                 {}, FAIL, ["no_pm"], id="no PM, work started"),
    pytest.param(engagement(), {}, FAIL, ["no_brief"], id="no brief at all"),
    pytest.param(engagement(fields={"brief": None}, comments=(ACK,)), {}, FAIL, ["no_brief"],
                 id="brief field mapped but empty"),
    pytest.param(engagement(fields={"brief": ""}), {}, FAIL, ["no_brief"],
                 id="brief field mapped, blank text"),
    pytest.param(engagement(documents=(document(DocumentKind.OTHER, ago(45)),)), {}, FAIL,
                 ["no_brief"], id="other document is not a brief"),
    pytest.param(engagement(documents=(document(DocumentKind.BRIEF, ago(45), CLIENT_BOSS),),
                            comments=(ACK,)),
                 {}, FAIL, ["brief_by_client"], id="only brief uploaded by the client"),
    pytest.param(engagement(documents=(document(DocumentKind.BRIEF, ago(35)),),
                            comments=(comment(PROJECT_MANAGER, ago(34)),)),
                 {}, FAIL, ["brief_late"], id="brief added after work started"),
    pytest.param(engagement(documents=(document(DocumentKind.BRIEF, ago(40, -0.01)),)), {},
                 FAIL, ["brief_late"], id="brief added 36 seconds after the start"),
    pytest.param(engagement(status="Done", status_category=StatusCategory.DONE,
                            status_history=(),
                            documents=(document(DocumentKind.BRIEF, ago(59)),)),
                 {}, FAIL, ["brief_late"],
                 id="done with no history: started when created, brief came later"),
    pytest.param(engagement(documents=(BRIEF,)), {}, FAIL, ["not_acknowledged"],
                 id="nobody acknowledged"),
    pytest.param(engagement(documents=(BRIEF,),
                            comments=(comment(PROJECT_MANAGER, ago(46)),)),
                 {}, FAIL, ["not_acknowledged"], id="PM comment before the brief existed"),
    pytest.param(engagement(documents=(BRIEF,),
                            comments=(comment(PROJECT_MANAGER, ago(39)),)),
                 {}, FAIL, ["not_acknowledged"], id="PM comment only after work started"),
    pytest.param(engagement(documents=(BRIEF,),
                            comments=(comment(ACCOUNT_MANAGER, ago(42)),)),
                 {}, FAIL, ["not_acknowledged"], id="account manager is not the PM"),
    pytest.param(engagement(documents=(BRIEF,), comments=(comment(STRANGER, ago(42)),)),
                 {}, FAIL, ["not_acknowledged"], id="unknown person's comment"),
    pytest.param(engagement(documents=(BRIEF,), fields={"brief_acknowledged": False}), {},
                 FAIL, ["not_acknowledged"], id="acknowledged checkbox unticked"),
    pytest.param(engagement(documents=(BRIEF,), fields={"brief_acknowledged": None}), {},
                 FAIL, ["not_acknowledged"], id="acknowledged field mapped, empty"),
]


@pytest.mark.parametrize(("e", "settings", "status", "expected"), PM_CASES)
def test_pm_briefed(e: Engagement, settings: dict[str, Any], status: Status,
                    expected: list[str]) -> None:
    assert_outcome(check(pm_briefed, e, settings), status, expected)


def test_no_pm_evidence_names_the_start() -> None:
    e = engagement(roles=Roles(points_of_contact=(ACCOUNT_MANAGER,), project_managers=()))
    (reason,) = check(pm_briefed, e).reasons
    assert reason.render("en") == (
        "No project manager is assigned, and work started on 2026-10-11 12:00 UTC."
    )


def test_brief_late_evidence() -> None:
    e = engagement(documents=(document(DocumentKind.BRIEF, ago(35), name="Brief.pdf"),))
    (reason,) = check(pm_briefed, e).reasons
    assert reason.params == {"name": "Brief.pdf", "added": "2026-10-16 12:00 UTC",
                             "started": "2026-10-11 12:00 UTC"}


def test_not_acknowledged_names_the_pm() -> None:
    (reason,) = check(pm_briefed, engagement(documents=(BRIEF,))).reasons
    assert reason.params == {"people": "Peter Project"}
