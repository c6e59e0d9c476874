"""`clientguard` commands with `--connector bitrix24`: a saved deal read offline, keys people
type, and the settings `install bitrix24` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner, Result

from plugin.cli import cli
from tests.connectors.bitrix24.portal import OUTGOING_TOKEN, WEBHOOK_URL, FakePortal
from tests.test_cli import assert_bad_input, configure

REST = Path(__file__).parent / "connectors" / "bitrix24" / "fixtures" / "rest"
NOW = "2024-09-02T10:00:00+00:00"
WEBHOOK = {"webhook_url": "https://acme.bitrix24.example/rest/1/witnesscode/",
           "outgoing_token": "witness-token"}



def run(config: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", config, *args])


def saved_deal(tmp_path: Path) -> str:
    """Deal 410 as saved: the portal's answers to a cold snapshot's two batch calls."""
    answers = [json.loads((REST / name).read_text("utf-8")) for name in
               ("batch__deal_410__cold_first.json", "batch__deal_410__cold_second.json")]
    path = tmp_path / "deal-410.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    return str(path)


def test_a_saved_deal_is_checked_offline(tmp_path: Path) -> None:
    result = run(configure(tmp_path, bitrix24=None), "check", "--connector", "bitrix24", "--input",
                 saved_deal(tmp_path), "--now", NOW, "--format", "json")

    assert result.exit_code == 1, result.output  # the contract came after the first invoice
    report = json.loads(result.stdout)
    assert report["engagement"]["key"] == "DEAL-410"
    assert [finding["rule"] for finding in report["findings"]] == ["contract-reviewed"]
    assert not (tmp_path / "clientguard.sqlite3").exists()  # offline: no database touched


def test_a_saved_deal_without_connector_is_named_as_one(tmp_path: Path) -> None:
    path = saved_deal(tmp_path)
    result = run(configure(tmp_path, bitrix24=None), "check", "--input", path)

    assert result.exit_code == 2, result.output
    assert result.stderr == (f"clientguard: {path}: this is saved from Bitrix24, not engagement "
                             "JSON: add --connector bitrix24\n")


def test_a_file_that_is_no_saved_deal_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"result": {"result": {"comments": []}}}', encoding="utf-8")

    assert_bad_input(run(configure(tmp_path, bitrix24=None), "check", "--connector", "bitrix24",
                         "--input", str(path)),
                     "not a saved Bitrix24 deal: no 'deal' result")


@pytest.mark.parametrize(("command", "value"), [("deal", None), ("deal_fields", {"fields": 5})])
def test_a_saved_deal_of_a_shape_the_portal_never_sends_is_bad_input(
        tmp_path: Path, command: str, value: object) -> None:
    answers = json.loads(Path(saved_deal(tmp_path)).read_text("utf-8"))
    results = {key: result for answer in answers
               for key, result in answer["result"]["result"].items()}
    assert command in results
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({**results, command: value}), encoding="utf-8")
    assert_bad_input(run(configure(tmp_path, bitrix24=None), "check", "--connector", "bitrix24",
                         "--input", str(path)),
                     "not a saved Bitrix24 deal as the snapshot answers it:")


def test_a_key_that_is_no_deal_id_is_bad_input(tmp_path: Path) -> None:
    assert_bad_input(run(configure(tmp_path, bitrix24=WEBHOOK), "check", "--connector", "bitrix24",
                         "ACME-12"),
                     "'ACME-12' is not a Bitrix24 deal id (e.g. 410 or DEAL-410)")


def test_a_live_check_without_a_connection_names_the_missing_setting(tmp_path: Path) -> None:
    config = configure(tmp_path, bitrix24={"outgoing_token": "t"})
    assert_bad_input(run(config, "check", "--connector", "bitrix24", "410"),
                     "bitrix24 → webhook_url is needed")


def test_app_mode_with_no_portal_installed_says_how_to_install(tmp_path: Path) -> None:
    config = configure(tmp_path, bitrix24={"client_id": "local.1", "client_secret": "witness",
                                  "public_url": "https://guard.example.com"})

    assert_bad_input(run(config, "backfill", "--connector", "bitrix24"),
                     "no portal has installed the ClientGuard application yet")


def test_install_without_a_public_url_says_where_to_give_one(tmp_path: Path) -> None:
    assert_bad_input(run(configure(tmp_path, bitrix24=WEBHOOK), "install", "bitrix24"),
                     "no public URL: give --url https://… (where the portal reaches this "
                     "ClientGuard) or set bitrix24.public_url")


def test_install_prints_the_portal_settings(tmp_path: Path) -> None:
    result = run(configure(tmp_path, bitrix24=WEBHOOK), "install", "bitrix24", "--url",
                 "https://guard.agency.example")

    assert result.exit_code == 0, result.output
    assert ("    Initial installation path: https://guard.agency.example/apps/bitrix24/install"
            in result.stdout)
    assert "    Handler URL: https://guard.agency.example/hooks/bitrix24" in result.stdout
    assert "witnesscode" not in result.stdout and "witness-token" not in result.stdout


# -- live, against the portal stand-in ---------------------------------------------------

def portal_config(tmp_path: Path) -> str:
    return configure(tmp_path, bitrix24={"webhook_url": WEBHOOK_URL,
                                         "outgoing_token": OUTGOING_TOKEN})


def test_a_live_dry_run_shows_the_comment_and_writes_nothing(tmp_path: Path) -> None:
    portal = FakePortal()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        portal.mock(mock)
        result = run(portal_config(tmp_path), "check", "--connector", "bitrix24", "DEAL-410",
                     "--dry-run", "--now", NOW)

    assert result.exit_code == 1, result.output
    assert ("DEAL-410: would create the sticky comment, on the deal's timeline (employees "
            "with access to the deal)") in result.stdout
    assert "Reviewed contract before work or invoicing" in result.stdout
    assert portal.comment_writes() == []
    assert [call.method for call in portal.calls] == ["batch", "batch"]  # cold: two calls


def test_a_deal_outside_the_configured_pipelines_is_refused_and_not_written(
        tmp_path: Path) -> None:
    portal = FakePortal()
    config = configure(tmp_path, bitrix24={"webhook_url": WEBHOOK_URL,
                                           "outgoing_token": OUTGOING_TOKEN,
                                           "deal_categories": ["2"]})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        portal.mock(mock)
        result = run(config, "check", "--connector", "bitrix24", "DEAL-410", "--now", NOW)

    assert result.exit_code == 2, result.output
    assert ("DEAL-410 is not an engagement: deal 410 is in pipeline 0, not one of [bitrix24] "
            "deal_categories (2)") in result.output
    assert portal.comment_writes() == []


def test_a_live_check_writes_the_comment_once(tmp_path: Path) -> None:
    portal = FakePortal()
    config = portal_config(tmp_path)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        portal.mock(mock)
        first = run(config, "check", "--connector", "bitrix24", "410", "--now", NOW)
        again = run(config, "check", "--connector", "bitrix24", "410", "--now", NOW)

    assert "DEAL-410: created the sticky comment" in first.stdout
    assert "sticky comment" in again.stdout and "unchanged" in again.stdout
    assert [write.method for write in portal.comment_writes()] == ["crm.timeline.comment.add"]


def test_backfill_evaluates_every_deal_in_progress(tmp_path: Path) -> None:
    portal = FakePortal(deals=3)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        portal.mock(mock)
        result = run(portal_config(tmp_path), "backfill", "--connector", "bitrix24",
                     "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "scanned 3, would create 3, would update 0, would delete 0, unchanged 0, failed 0 "
        "(dry run: nothing written)")
    assert portal.comment_writes() == []
