"""The README's commands and links: every `schedsearch ...` line in its shell blocks parses with the real CLI
parser (subcommands and flags exist), and every relative link points at a file in the repository."""

from __future__ import annotations

import re
import shlex

import pytest

from service.cli import build_parser
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
