"""The options of serve are made from the settings, and the README's table says the same."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from realtime_daemon.cli import serve
from realtime_daemon.config import Config

README = Path(__file__).parent.parent / "README.md"


def readme_rows() -> list[tuple[str, ...]]:
    """The rows of the README's option table: option, variable, default, meaning."""
    section = README.read_text().split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `--")]
    return [tuple(cell.strip() for cell in row.strip("| ").split(" | ")) for row in rows]


def default_cell(default: object) -> str:
    """A default as the table shows it: the value in backticks, or ``none``."""
    if isinstance(default, int | float) or (isinstance(default, str) and default):
        return f"`{default}`"
    return "none"


def test_the_readme_option_table_is_the_options() -> None:
    """Each row of the README's table is an option of serve, in order, with its variable,
    its default and its help (the help is the meaning less its backticks)."""
    options = [p for p in serve.params if isinstance(p, click.Option)]
    expected = [
        (
            f"`{p.opts[0]}`",
            f"`{p.envvar or 'REALTIME_DAEMON_' + str(p.name).upper()}`",
            default_cell(p.default),
            p.help,
        )
        for p in options
    ]
    got = [(*row[:3], row[3].replace("`", "")) for row in readme_rows()]
    assert got == expected


def test_every_setting_is_an_option_described_by_its_field() -> None:
    """Every Config field but models is an option whose help is the field's description."""
    described = {
        field.name: field.type.extra_json_schema["description"]
        for field in msgspec.inspect.type_info(Config).fields  # type: ignore[attr-defined]
        if isinstance(field.type, msgspec.inspect.Metadata) and field.type.extra_json_schema
    }
    helps = {p.name: p.help for p in serve.params if p.name != "config_file"}
    assert set(helps) == {f.name for f in msgspec.structs.fields(Config)} - {"models"}
    for name, description in described.items():
        if name in helps:
            assert helps[name] == description.replace("`", ""), name
