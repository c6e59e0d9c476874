"""Jira webhook deliveries → events: one test per fixture, then signatures, bodies, names,
delivery ids and our own writes. Fixtures are real payloads (see fixtures/SOURCES.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import STICKY_MARKER, Delivery, EngagementRef, Event, Ignored
from connectors.errors import BadSignature, MalformedDelivery
from connectors.jira import JiraConnector
from connectors.jira.events import SUPPORTED_EVENTS, verify_signature
from connectors.jira.settings import JiraSettingsSchema
from plugin.manifest import load_manifest

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ID_HEADER = "x-atlassian-webhook-identifier"
SECRET = "s3cret-for-tests"


def delivery(fixture: str | bytes, *, headers: dict[str, str] | None = None,
             secret: str | None = None) -> Delivery:
    """A delivery of a fixture file's raw bytes (or of `fixture` itself when it is bytes),
    signed with `secret` as Jira signs when one is given."""
    body = fixture if isinstance(fixture, bytes) else (FIXTURES / fixture).read_bytes()
    all_headers = {"content-type": "application/json", **(headers or {})}
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        all_headers["x-hub-signature"] = f"sha256={digest}"
    return Delivery(body=body, headers=all_headers, received_at=RECEIVED_AT)


def parse(fixture: str | bytes, *, headers: dict[str, str] | None = None,
          secret: str | None = None, **settings: Any) -> Event | Ignored:
    connector = JiraConnector(JiraSettingsSchema().load({"site": "acme", **settings}))
    return connector.parse_delivery(delivery(fixture, headers=headers, secret=secret))


def edited(fixture: str, change: Any) -> bytes:
    """A fixture's payload after `change(payload)`, re-encoded (for cases no sample shows)."""
    payload = json.loads((FIXTURES / fixture).read_bytes())
    change(payload)
    return json.dumps(payload).encode()


# --- every fixture, read as the event it is ------------------------------------------------

FIXTURE_EVENTS = [  # fixture, delivery id, issue id, event name, occurred at, actor
    ("jira_issue_created__cloud_with_changelog", "cloud-1",
     "10509", "jira:issue_created", datetime(2019, 8, 27, 19, 43, 24, 475000, tzinfo=UTC),
     "5cedcb4355a88a0fc86388ba"),
    ("jira_issue_updated__cloud_custom_field", "cloud-2",
     "10368", "jira:issue_updated", datetime(2019, 8, 12, 1, 49, 13, 414000, tzinfo=UTC),
     "5cedcb4355a88a0fc86388ba"),
    ("jira_issue_updated__cloud_assigned", "cloud-3",
     "10040", "jira:issue_updated", datetime(2019, 2, 16, 3, 18, 1, 752000, tzinfo=UTC),
     "5c5f880629be9642ba529340"),
    ("jira_issue_updated__cloud_attachment", "cloud-4",
     "10040", "jira:issue_updated", datetime(2019, 2, 16, 21, 12, 10, 65000, tzinfo=UTC),
     "5c5f880629be9642ba529340"),
    ("jira_issue_updated__cloud_status", "cloud-5",
     "10040", "jira:issue_updated", datetime(2019, 2, 16, 3, 14, 22, 39000, tzinfo=UTC),
     "5c5f880629be9642ba529340"),
    ("jira_issue_updated__datacenter_commented",
     "sha256:213dcc43dd6841d0d2b8d6cf60a3ebbdf92df4061a329278420ab7dd7086f795",
     "10231", "jira:issue_updated", datetime(2019, 6, 28, 21, 32, 16, 66000, tzinfo=UTC),
     "TestUser"),
    ("jira_issue_updated__datacenter_custom_field",
     "sha256:5b6cb6233d8e8eb7490b901f4ada25351708efab0da24c989030b4277c93c6e0",
     "10106", "jira:issue_updated", datetime(2019, 8, 12, 1, 41, 0, 611000, tzinfo=UTC),
     "test"),
    ("jira_issue_updated__datacenter_status",
     "sha256:9bed4f32da629bb758ecddebb44a703d0be10c0bb98c75025e18b06a2f321ff0",
     "10300", "jira:issue_updated", datetime(2019, 8, 14, 3, 2, 33, 680000, tzinfo=UTC),
     "admin"),
    ("jira_issue_deleted__server",
     "sha256:65c3386a04f5271f6d90a4992a746cf9255d539533d583fda1f09a1df683a63b",
     "10400", "jira:issue_deleted", datetime(2013, 3, 27, 17, 6, 9, 102000, tzinfo=UTC),
     "lfranchi"),
    ("comment_created__cloud", "cloud-6",
     "10040", "comment_created", datetime(2019, 2, 16, 3, 11, 18, 321000, tzinfo=UTC),
     "5c5f880629be9642ba529340"),
    ("comment_created__datacenter_no_issue",
     "sha256:b73219dc04dfb038637faf665d65799bfdcaa59ac3e9e363df2b401ad2a90b1c",
     "10013", "comment_created", datetime(2019, 6, 4, 0, 15, 17, 234000, tzinfo=UTC),
     "levbrouk"),
    ("comment_updated__cloud", "cloud-7",
     "10040", "comment_updated", datetime(2019, 2, 16, 3, 12, 8, 432000, tzinfo=UTC),
     "5c5f880629be9642ba529340"),
    ("comment_deleted__cloud", "cloud-8",
     "10000", "comment_deleted", datetime(2019, 8, 16, 14, 2, 24, 825000, tzinfo=UTC),
     None),  # the payload names the comment's last editor, not who deleted it
    ("worklog_created__cloud_issue_id_only", "cloud-9",
     "10014", "worklog_created", datetime(2026, 9, 22, 18, 48, 35, 652000, tzinfo=UTC),
     "99:27935d01-92a7-4687-8272-a9b8d3b2ae2e"),
    ("worklog_updated__cloud", "cloud-10",
     "10014", "worklog_updated", datetime(2026, 9, 22, 18, 49, 13, 744000, tzinfo=UTC),
     "99:27935d01-92a7-4687-8272-a9b8d3b2ae2e"),
    ("worklog_deleted__cloud", "cloud-11",
     "10014", "worklog_deleted", datetime(2026, 9, 21, 15, 41, 41, 877000, tzinfo=UTC),
     "99:27935d01-92a7-4687-8272-a9b8d3b2ae2e"),
    ("attachment_created__cloud", "cloud-12",
     "10000", "attachment_created", datetime(2019, 8, 16, 14, 0, 17, 153000, tzinfo=UTC),
     "5c76b994e1bcdf6294d0eb0f"),
]


@pytest.mark.parametrize(("fixture", "delivery_id", "issue_id", "name", "occurred_at", "actor"),
                         FIXTURE_EVENTS, ids=[row[0] for row in FIXTURE_EVENTS])
def test_each_fixture_is_read_as_the_event_it_is(fixture: str, delivery_id: str, issue_id: str,
                                                 name: str, occurred_at: datetime,
                                                 actor: str | None) -> None:
    """Cloud names each delivery in its header; a Data Center one (no such header) is known
    by its body's hash."""
    headers = None if delivery_id.startswith("sha256:") else {ID_HEADER: delivery_id}
    assert parse(f"{fixture}.json", headers=headers) == Event(
        EngagementRef("jira", "acme", issue_id), name, delivery_id, occurred_at, actor,
        by_us=False)

@pytest.mark.parametrize("service_account", ["5c76b994e1bcdf6294d0eb0f", None])
def test_our_sticky_comment_deleted_is_never_taken_for_our_own_echo(
        service_account: str | None) -> None:
    """Its author and last editor are our account and its body carries the marker, but a
    person may have deleted it: the evaluation must run, and write it again."""
    def ours(payload: dict[str, Any]) -> None:
        payload["comment"]["body"] += f"\n\n{STICKY_MARKER}"

    event = parse(edited("comment_deleted__cloud.json", ours), service_account=service_account)
    assert isinstance(event, Event)
    assert (event.by_us, event.actor) == (False, None)


def test_attachment_deleted__derived_from_attachment_created() -> None:
    """No captured `attachment_deleted` exists (fixtures/SOURCES.md); Jira documents the same
    `attachment` + `issue` shape for both, so the created sample stands in, renamed."""
    body = edited("attachment_created__cloud.json",
                  lambda payload: payload.update(webhookEvent="attachment_deleted"))
    assert parse(body, headers={ID_HEADER: "cloud-13"}) == Event(
        ref=EngagementRef("jira", "acme", "10000"),
        name="attachment_deleted",
        delivery_id="cloud-13",
        occurred_at=datetime(2019, 8, 16, 14, 0, 17, 153000, tzinfo=UTC),
        actor="5c76b994e1bcdf6294d0eb0f",
        by_us=False,
    )


def test_attachment_created__derived_no_issue() -> None:
    assert parse("attachment_created__derived_no_issue.json") == Ignored(
        "attachment_created", "no issue reference"
    )


def test_every_supported_event_is_registered_in_the_manifest() -> None:
    assert list(SUPPORTED_EVENTS) == load_manifest()["platforms"]["jira"]["webhook"]["events"]


# --- signatures ---------------------------------------------------------------------------

def test_signature_from_atlassians_documentation_is_accepted() -> None:
    verify_signature(
        b"Hello World!",
        "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9",
        "It's a Secret to Everybody",
    )


def test_signature_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(MalformedDelivery):
        parse(b"Hello World!", webhook_secret="It's a Secret to Everybody", headers={
            "x-hub-signature":
                "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9",
        })
    with pytest.raises(BadSignature):
        parse(b"Hello World!", webhook_secret="another secret", headers={
            "x-hub-signature":
                "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9",
        })


def test_valid_signature_is_accepted() -> None:
    event = parse("comment_created__cloud.json", secret=SECRET, webhook_secret=SECRET)
    assert isinstance(event, Event)
    assert event.ref == EngagementRef("jira", "acme", "10040")


@pytest.mark.parametrize("size", [0, 1, 2046, 2047, 2048, 4094, 4095, 9000])
def test_signature_is_checked_over_every_byte_of_bodies_of_any_size(size: int) -> None:
    """The body is hashed in pieces (connectors/jira/events.py says why): a signature over
    the whole body passes, and a change to the last byte fails, also at piece boundaries."""
    body = bytes(index % 251 for index in range(size))
    header = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    verify_signature(body, header, SECRET)
    if size:
        with pytest.raises(BadSignature, match="does not match"):
            verify_signature(body[:-1] + bytes([body[-1] ^ 1]), header, SECRET)


def test_signature_with_another_secret_is_rejected() -> None:
    with pytest.raises(BadSignature, match="does not match"):
        parse("comment_created__cloud.json", secret="not the secret", webhook_secret=SECRET)


def test_signature_over_another_body_is_rejected() -> None:
    signed = delivery("comment_created__cloud.json", secret=SECRET)
    tampered = Delivery(body=signed.body.replace(b"Added a comment", b"Added a c0mment"),
                        headers=signed.headers, received_at=RECEIVED_AT)
    connector = JiraConnector(JiraSettingsSchema().load({"webhook_secret": SECRET}))
    with pytest.raises(BadSignature, match="does not match"):
        connector.parse_delivery(tampered)


def test_missing_signature_is_rejected_when_a_secret_is_set() -> None:
    with pytest.raises(BadSignature, match="missing X-Hub-Signature"):
        parse("comment_created__cloud.json", webhook_secret=SECRET)


@pytest.mark.parametrize("header", [
    "sha1=0c9a1d6a8b6f1f6ca4d5e0f4cc1f8b8d7bd6ad2d",
    "SHA256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9",
    "a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9",
])
def test_signature_methods_other_than_sha256_are_rejected(header: str) -> None:
    with pytest.raises(BadSignature, match="unsupported signature method"):
        verify_signature(b"Hello World!", header, "It's a Secret to Everybody")


def test_empty_sha256_signature_is_rejected() -> None:
    with pytest.raises(BadSignature, match="does not match"):
        verify_signature(b"Hello World!", "sha256=", "It's a Secret to Everybody")


def test_deliveries_are_accepted_unsigned_when_no_secret_is_configured() -> None:
    event = parse("comment_created__cloud.json", headers={"x-hub-signature": "sha256=junk"})
    assert isinstance(event, Event)


# --- bodies -------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "detail"), [
    (b"webhookEvent=comment_created", "body is not valid JSON"),
    (b'{"webhookEvent": "comment_created", "x": "\xff"}', "body is not UTF-8"),
    (b'[{"webhookEvent": "comment_created"}]', "body is a JSON list, not an object"),
    (b'"comment_created"', "body is a JSON str, not an object"),
    (b'{"timestamp": 1550286678321}', "no webhookEvent string"),
    (b'{"webhookEvent": ""}', "no webhookEvent string"),
    (b'{"webhookEvent": ["comment_created"]}', "no webhookEvent string"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"webhookEvent": "comment_created", "timestamp": ' + b"1" * 4400 + b"}",
     "body is not JSON we accept: Exceeds the limit"),  # Python's 4,300-digit integers
])
def test_bodies_jira_would_not_send_are_rejected(body: bytes, detail: str) -> None:
    with pytest.raises(MalformedDelivery, match=detail) as raised:
        parse(body)
    assert raised.value.status == 400


def test_missing_or_odd_timestamp_leaves_occurred_at_empty() -> None:
    for timestamp in (None, "1550286678321", 1.5e12, True, 10**30):
        body = edited("comment_created__cloud.json",
                      lambda payload, value=timestamp: payload.update(timestamp=value))
        event = parse(body)
        assert isinstance(event, Event)
        assert event.occurred_at is None


# --- event names --------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "issuelink_created", "issue_property_set", "sprint_started", "jira:version_released",
    "project_updated", "user_created", "board_configuration_changed", "option_voting_changed",
])
def test_events_we_drop_on_purpose_are_ignored(name: str) -> None:
    body = json.dumps({"timestamp": 1596481635907, "webhookEvent": name}).encode()
    assert parse(body) == Ignored(name, "not handled")


def test_unknown_events_are_not_handled() -> None:
    body = b'{"timestamp": 1596481635907, "webhookEvent": "jira:issue_teleported"}'
    assert parse(body) == Ignored("jira:issue_teleported", "unknown event")


# --- delivery ids -------------------------------------------------------------------------

def test_delivery_id_comes_from_the_cloud_header() -> None:
    event = parse("comment_created__cloud.json", headers={ID_HEADER: "9f2c-delivery"})
    assert isinstance(event, Event)
    assert event.delivery_id == "9f2c-delivery"


def test_an_unusually_long_delivery_id_is_stored_as_its_hash() -> None:
    event = parse("comment_created__cloud.json", headers={ID_HEADER: "x" * 500})
    assert isinstance(event, Event)
    assert event.delivery_id == (
        "sha256:c38c2bf3055c516a98ac5d97f30e7c364e827bc0199e1c3415b794afbe55dcad")


def test_delivery_id_without_header_is_the_body_hash_and_repeats_with_the_body() -> None:
    first = parse("comment_created__cloud.json")
    again = parse("comment_created__cloud.json")
    other = parse("comment_updated__cloud.json")
    assert isinstance(first, Event)
    assert isinstance(again, Event)
    assert isinstance(other, Event)
    assert first.delivery_id == again.delivery_id == (
        "sha256:c47f34c59d80594ab91e6e7986e6227812a13ccde946cf7411126adab4b5fcbb"
    )
    assert other.delivery_id == (
        "sha256:1e1a1e12e39ac1213b3f4191d11860bc14c12a43fc8980f0d2442e369afc16e1"
    )


def test_a_body_hash_is_a_unique_key_only_when_jira_stamped_the_body() -> None:
    """A stamped body names one change (a later copy is a redelivery, however late); an
    unstamped one might be a second identical change, so it is marked `by_content`."""
    stamped = parse("comment_created__datacenter_no_issue.json")
    unstamped = parse(edited("comment_created__datacenter_no_issue.json",
                             lambda payload: payload.pop("timestamp")))
    assert isinstance(stamped, Event) and isinstance(unstamped, Event)
    assert (stamped.by_content, unstamped.by_content) == (False, True)
    assert unstamped.delivery_id.startswith("sha256:")


# --- our own writes -----------------------------------------------------------------------

@pytest.mark.parametrize(("fixture", "service_account"), [
    ("comment_created__cloud.json", "5c5f880629be9642ba529340"),
    ("jira_issue_updated__cloud_assigned.json", "5c5f880629be9642ba529340"),
    ("worklog_created__cloud_issue_id_only.json", "99:27935d01-92a7-4687-8272-a9b8d3b2ae2e"),
    ("attachment_created__cloud.json", "5c76b994e1bcdf6294d0eb0f"),
    ("comment_created__datacenter_no_issue.json", "levbrouk"),
    ("jira_issue_updated__datacenter_status.json", "admin"),
])
def test_events_caused_by_the_service_account_are_by_us(fixture: str,
                                                        service_account: str) -> None:
    event = parse(fixture, service_account=service_account)
    assert isinstance(event, Event)
    assert event.by_us is True


def test_events_caused_by_someone_else_are_not_by_us() -> None:
    event = parse("comment_created__cloud.json", service_account="557058:clientguard-bot")
    assert isinstance(event, Event)
    assert event.by_us is False


def _mark_comment(payload: dict[str, Any]) -> None:
    payload["comment"]["body"] += f"\n\n{STICKY_MARKER}"


@pytest.mark.parametrize("fixture", [
    "comment_created__cloud.json",
    "comment_updated__cloud.json",
    "comment_created__datacenter_no_issue.json",
    "jira_issue_updated__datacenter_commented.json",
])
def test_comments_carrying_the_sticky_marker_are_by_us(fixture: str) -> None:
    event = parse(edited(fixture, _mark_comment))
    assert isinstance(event, Event)
    assert event.by_us is True


@pytest.mark.parametrize("fixture", [
    "comment_updated__cloud.json",
    "comment_created__datacenter_no_issue.json",
    "jira_issue_updated__datacenter_commented.json",
])
def test_a_person_editing_or_quoting_our_comment_is_not_us(fixture: str) -> None:
    """With the service account known, the marker alone does not make an event ours: a
    person who edited our sticky comment (or shared it with the client) caused it, and the
    evaluation it asks for must put the comment right."""
    event = parse(edited(fixture, _mark_comment), service_account="557058:clientguard-bot")
    assert isinstance(event, Event)
    assert event.by_us is False


def test_a_marked_comment_with_no_author_is_taken_for_ours_even_with_a_service_account(
) -> None:
    def anonymous(payload: dict[str, Any]) -> None:
        _mark_comment(payload)
        for key in ("author", "updateAuthor"):
            payload["comment"].pop(key, None)
        payload.pop("user", None)

    event = parse(edited("comment_updated__cloud.json", anonymous),
                  service_account="557058:clientguard-bot")
    assert isinstance(event, Event)
    assert event.by_us is True
