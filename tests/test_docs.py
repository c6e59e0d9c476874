"""Generated documentation is current: docs/rules.md is what the catalogue generates."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from plugin.cli import cli
from plugin.rules import CATALOGUE
from plugin.rules.docs import rules_markdown

RULES_MD = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def test_docs_rules_md_is_not_stale() -> None:
    assert RULES_MD.read_text(encoding="utf-8") == rules_markdown(), (
        "docs/rules.md is stale: run `clientguard rules docs --output docs/rules.md`")


def test_every_rule_and_setting_is_documented() -> None:
    markdown = rules_markdown()
    for rule in CATALOGUE:
        assert f"### `{rule.id}`" in markdown
        for name in rule.settings._declared_fields:
            assert f"| `{name}` |" in markdown, (rule.id, name)


def test_the_docs_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "rules.md"
    result = CliRunner().invoke(cli, ["rules", "docs", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == rules_markdown()


def test_the_docs_command_says_when_it_cannot_write(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "rules.md"
    result = CliRunner().invoke(cli, ["rules", "docs", "--output", str(target)])
    assert result.exit_code == 2
    assert result.output == (f"clientguard: --output: cannot write {target}: "
                             "No such file or directory\n")
