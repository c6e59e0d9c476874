"""`decision-maker`: one named decision maker on the client's side, not a crowd giving orders.

Seed 000 §2: two or three client people who argue with each other in front of the agency
and never agree on what the agency should do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from marshmallow import ValidationError

from plugin.config import ConfigError, build_config
from plugin.core.model import Client, Comment, Person, Side, Visibility
from plugin.core.rule import Outcome, Status
from plugin.rules.stakeholders import DecisionMakerSettings, decision_maker
from tests.builders import (
    ACCOUNT_MANAGER,
    CLIENT_BOSS,
    CLIENT_CFO,
    CLIENT_MARKETER,
    DEVELOPER,
    NOW,
    STRANGER,
    ago,
    comment,
    engagement,
)

CLIENT_INTERN = Person("c-4", "Lars Intern", Side.CLIENT, "lars@client.example")
NEW_CLIENT_PERSON = Person("c-9", "Nina Newcomer", Side.CLIENT, "nina@client.example")
PEOPLE = (CLIENT_BOSS, CLIENT_MARKETER, CLIENT_CFO, CLIENT_INTERN)


def check(deciders: tuple[Person, ...] | None = (CLIENT_BOSS,), comments: tuple[Comment, ...] = (),
          **settings: Any) -> Outcome:
    e = engagement(client=Client("acme", "Acme Shoes", PEOPLE, deciders), comments=comments)
    return decision_maker(e, DecisionMakerSettings().load(settings), NOW)


def orders(*people: Person, days: float = 1) -> tuple[Comment, ...]:
    return tuple(comment(person, ago(days), "Please change the banner.") for person in people)


def summary(outcome: Outcome) -> list[tuple[str, Status, dict[str, Any]]]:
    return [(reason.code, reason.level, reason.params) for reason in outcome.reasons]


# --- Not configured ------------------------------------------------------------------------

def test_no_decision_maker_field_is_not_configured() -> None:
    outcome = check(deciders=None)
    assert outcome.status is Status.NOT_CONFIGURED
    assert summary(outcome) == [
        ("not_mapped", Status.NOT_CONFIGURED, {"field": "decision_maker"})]


def test_not_configured_even_when_many_client_people_give_orders() -> None:
    outcome = check(deciders=None, comments=orders(*PEOPLE))
    assert outcome.status is Status.NOT_CONFIGURED


# --- The named decision maker --------------------------------------------------------------

def test_one_decision_maker_and_nobody_else_talking_passes() -> None:
    assert check() == Outcome(Status.PASS)


def test_an_empty_decision_maker_field_fails() -> None:
    outcome = check(deciders=())
    assert outcome.status is Status.FAIL
    assert summary(outcome) == [("no_decision_maker", Status.FAIL, {})]


def test_two_decision_makers_fail() -> None:
    outcome = check(deciders=(CLIENT_MARKETER, CLIENT_BOSS))
    assert outcome.status is Status.FAIL
    assert summary(outcome) == [("several_decision_makers", Status.FAIL,
                                 {"count": 2, "people": "Carla Client, Kim Marketer"})]
    assert outcome.reasons[0].render("en") == (
        "2 client people are named as decision makers: Carla Client, Kim Marketer.")


def test_the_same_person_named_twice_is_one_decision_maker() -> None:
    assert check(deciders=(CLIENT_BOSS, CLIENT_BOSS)) == Outcome(Status.PASS)


def test_several_decision_makers_are_counted_once_each() -> None:
    outcome = check(deciders=(CLIENT_BOSS, CLIENT_MARKETER, CLIENT_BOSS))
    assert summary(outcome) == [("several_decision_makers", Status.FAIL,
                                 {"count": 2, "people": "Carla Client, Kim Marketer"})]


def test_an_agency_person_is_no_decision_maker_on_the_clients_side() -> None:
    assert summary(check(deciders=(ACCOUNT_MANAGER,))) == [
        ("no_decision_maker", Status.FAIL, {})]
    assert check(deciders=(ACCOUNT_MANAGER, CLIENT_BOSS)) == Outcome(Status.PASS)


def test_a_decision_maker_of_unknown_side_still_counts() -> None:
    """The field names them as the client's decision maker; the side only could not be
    told from their e-mail domain."""
    assert check(deciders=(STRANGER,)) == Outcome(Status.PASS)
    assert summary(check(deciders=(STRANGER, CLIENT_BOSS)))[0][2] == {
        "count": 2, "people": "Carla Client, Somebody"}


# --- Client people giving instructions -----------------------------------------------------

def test_up_to_the_limit_of_client_people_giving_orders_passes() -> None:
    assert check(comments=orders(CLIENT_BOSS, CLIENT_MARKETER)) == Outcome(Status.PASS)


def test_more_client_people_than_the_limit_giving_orders_warns() -> None:
    outcome = check(comments=orders(CLIENT_BOSS, CLIENT_MARKETER, CLIENT_CFO))
    assert outcome.status is Status.WARN
    assert summary(outcome) == [("many_instructing", Status.WARN, {
        "days": 30, "count": 3, "people": "Carla Client, Kim Marketer, Olga Finance",
        "limit": 2})]
    assert outcome.reasons[0].render("en") == (
        "In the last 30 days 3 client people gave instructions (Carla Client, Kim Marketer, "
        "Olga Finance); the limit is 2.")


def test_many_comments_by_the_same_people_count_each_person_once() -> None:
    comments = (*orders(CLIENT_BOSS, CLIENT_MARKETER, days=3),
                *orders(CLIENT_BOSS, CLIENT_MARKETER, days=2),
                *orders(CLIENT_MARKETER, days=1))
    assert check(comments=comments) == Outcome(Status.PASS)


def test_a_client_person_not_listed_on_the_client_still_counts() -> None:
    outcome = check(comments=orders(CLIENT_BOSS, CLIENT_MARKETER, NEW_CLIENT_PERSON))
    assert summary(outcome)[0][2]["people"] == "Carla Client, Kim Marketer, Nina Newcomer"


def test_agency_people_and_people_of_unknown_side_are_not_counted() -> None:
    comments = orders(CLIENT_BOSS, CLIENT_MARKETER, ACCOUNT_MANAGER, DEVELOPER, STRANGER)
    assert check(comments=comments) == Outcome(Status.PASS)


def test_the_limit_and_window_come_from_settings() -> None:
    comments = orders(CLIENT_BOSS, CLIENT_MARKETER, days=5)
    assert check(comments=comments) == Outcome(Status.PASS)
    assert summary(check(comments=comments, max_instructing=1))[0][2] == {
        "days": 30, "count": 2, "people": "Carla Client, Kim Marketer", "limit": 1}
    assert check(comments=comments, max_instructing=1, window_days=4) == Outcome(Status.PASS)


def test_a_missing_decision_maker_and_a_crowd_are_both_reported() -> None:
    outcome = check(deciders=(), comments=orders(CLIENT_BOSS, CLIENT_MARKETER, CLIENT_CFO))
    assert outcome.status is Status.FAIL
    assert [reason.code for reason in outcome.reasons] == [
        "no_decision_maker", "many_instructing"]


# --- Window edges --------------------------------------------------------------------------

def edge_case(at_offset: timedelta) -> Outcome:
    """Two client people inside the window, a third one at `window start + at_offset`."""
    start = NOW - timedelta(days=30)
    third = Comment("c-edge", CLIENT_CFO, Visibility.PUBLIC, start + at_offset, "Stop!")
    return check(comments=(*orders(CLIENT_BOSS, CLIENT_MARKETER), third))


def test_a_comment_exactly_at_the_window_start_counts() -> None:
    assert edge_case(timedelta(0)).status is Status.WARN


def test_a_comment_just_before_the_window_does_not_count() -> None:
    assert edge_case(-timedelta(seconds=1)) == Outcome(Status.PASS)


def test_a_comment_exactly_at_now_counts_and_one_after_now_does_not() -> None:
    now_comment = Comment("c-now", CLIENT_CFO, Visibility.PUBLIC, NOW, "Stop!")
    later = Comment("c-later", CLIENT_CFO, Visibility.PUBLIC, NOW + timedelta(seconds=1), "!")
    base = orders(CLIENT_BOSS, CLIENT_MARKETER)
    assert check(comments=(*base, now_comment)).status is Status.WARN
    assert check(comments=(*base, later)) == Outcome(Status.PASS)


# --- Settings ------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{"max_instructing": 0}, {"window_days": 0},
                                      {"max_instructors": 3}])
def test_bad_settings_are_rejected(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DecisionMakerSettings().load(settings)


def test_a_bad_setting_in_the_configuration_names_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        build_config({"rules": {"decision-maker": {"max_instructing": 0}}})
    assert "rules → decision-maker → max_instructing: Must be greater than or equal to 1." in (
        str(error.value))
