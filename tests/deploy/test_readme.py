"""The README's commands and links: every `schedsearch ...` line in its shell blocks parses with the real CLI
parser (subcommands and flags exist), and every relative link points at a file in the repository."""

from __future__ import annotations

import re
import shlex

import pytest

from cli import build_parser
from tests.deploy.manifests import ROOT

README = ROOT / "README.md"
# Written by the benchmark issue; the README links it ahead of time.
NOT_YET_WRITTEN = {"docs/benchmarks.md"}


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def schedsearch_lines(text: str) -> list[str]:
    """Each `schedsearch` invocation in the shell blocks, normalised for parsing: `$(...)` and comments cut,
    placeholders filled, optional `[--flag value]` parts kept, `a|b|c` alternatives reduced to the first."""
    lines = []
    for block in shell_blocks(text):
        for raw in block.splitlines():
            match = re.search(r"(?:^|\$\()\s*(schedsearch\s[^#)]*)", raw.strip())
            if match is None:
                continue
            line = match.group(1)
            line = re.sub(r"\$\w+|<[^>]+>", "x", line)
            line = line.replace("[", " ").replace("]", " ")
            line = re.sub(r"(\w+)(\|\w+)+", r"\1", line)
            lines.append(line.strip())
    return lines


def test_the_readme_has_the_quick_start_commands() -> None:
    blocks = "\n".join(shell_blocks(README.read_text()))
    assert "scripts/demo.sh" in blocks and "scripts/test.sh" in blocks
    # `.ci/run` runs the README's test command.
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


LINES = schedsearch_lines(README.read_text())


def test_the_readme_shows_the_client_commands() -> None:
    used = {line.split()[1] for line in LINES}
    assert used >= {"submit", "jobs", "show", "trials", "report", "plot", "cancel", "serve", "token"}


@pytest.mark.parametrize("line", LINES)
def test_every_schedsearch_command_in_the_readme_parses(line: str) -> None:
    parser = build_parser()
    try:
        args = parser.parse_args(shlex.split(line)[1:])
    except SystemExit as exc:  # argparse exits on an unknown subcommand or flag
        pytest.fail(f"README command does not parse (exit {exc.code}): {line}")
    assert getattr(args, "handler", None) is not None, line


def test_every_relative_link_exists() -> None:
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if "://" not in t]
    assert local, "the README links the docs and deploy files"
    missing = [t for t in local if not (ROOT / t).exists() and t not in NOT_YET_WRITTEN]
    assert missing == []


def _task_rows() -> dict[str, str]:
    """README "Tasks" table: task name(s) in the first column -> the options column."""
    text = README.read_text()
    table = text[text.index("### Tasks") :].split("\n\n", 2)[1]
    rows: dict[str, str] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([\w-]+)`", cells[0]):
            rows[name] = cells[-1]
    return rows


def test_the_readme_task_table_matches_the_task_definitions() -> None:
    import json

    from schedules.tasks import catalogue
    from schedules.tasks.builtin import STREAMED

    rows = _task_rows()
    built_in = {n: d for n, d in catalogue().tasks.items() if (d.package or "").startswith("schedsearch ")}
    assert sorted(rows) == sorted(built_in)
    shared = {o.name for o in STREAMED}
    for name, cell in rows.items():
        options = {o.name: o for o in built_in[name].options}
        mentioned = dict(re.findall(r"`([a-z_][a-z0-9_]*)`(?: \(([^,)\s]+))?", cell))
        # every option the README names exists, with the default it states; every option is named
        assert set(mentioned) <= set(options), (name, set(mentioned) - set(options))
        assert set(options) - shared - set(mentioned) == set(), (name, set(options) - shared - set(mentioned))
        for option, default in mentioned.items():
            value = default.rstrip(":")
            if value in ("null", "true", "false") or re.fullmatch(r"\d+(\.\d+)?", value):
                assert json.loads(value) == options[option].default, (name, option, default)
