"""``schedsearch submit FILE`` on hostile or careless spec files: each ends in the one line documented in
docs/reliability.md ("Job spec files") and exit status 1, before anything is sent, with bounded memory and
never a traceback. The service is not running here: the file is refused before the client connects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from cli.specfile import MAX_SPEC_BYTES, load_spec
from tests.support.serve import free_port

LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi", strict=True)
)

# (file name, content, the documented line after "error: <path>")
BAD_FILES: list[tuple[str, str | bytes, str]] = [
    # 9 levels of 9 aliases: 387 million strings once expanded (2.5 GB and a MemoryError before)
    ("laughs.yaml", LAUGHS, ": line 9: more than 64 YAML aliases (*name); a job spec needs few, if any"),
    (
        "wide.yaml",  # few aliases, each repeating a large list: the expansion limit
        "a: &a [" + ", ".join(["1"] * 20_000) + "]\nb: [" + ", ".join(["*a"] * 15) + "]\n",
        ": the document holds more than 200000 values (counting every repetition of an alias); a job spec "
        "needs a few hundred",
    ),
    (
        "recursive.yaml",
        "name: x\nloop: &a [1, *a]\n",
        ": line 2: the alias *a is inside the node it names (a recursive alias); a job spec cannot hold "
        "a cycle",
    ),
    (
        "date.yaml",
        "name: 2024-01-01\n",
        ": line 1: 2024-01-01 is read as a date, which a job spec cannot hold; quote it to keep it as text",
    ),
    (
        "binary.yaml",
        "name: !!binary aGVsbG8=\n",
        ": line 1: the YAML tag !!binary is not allowed in a job spec (only maps, lists, text, numbers, "
        "true/false and null)",
    ),
    (
        "set.yaml",
        "name: !!set {a, b}\n",
        ": line 1: the YAML tag !!set is not allowed in a job spec (only maps, lists, text, numbers, "
        "true/false and null)",
    ),
    (
        "nan.yaml",
        "target: {grad_norm: .nan}\n",
        ": line 1: .nan is not a finite number; a job spec needs one",
    ),
    (
        "inf.yaml",
        "target: {grad_norm: -.inf}\n",
        ": line 1: -.inf is not a finite number; a job spec needs one",
    ),
    (
        "deep.yaml",
        "a: " + "[" * 3000 + "]" * 3000 + "\n",
        ": line 1: maps and lists nest deeper than 32 levels",
    ),
    (
        "duplicate.yaml",
        "name: x\nbudget: {max_epochs: -5}\nbudget: {max_epochs: 5}\n",
        ": line 3: the key 'budget' appears more than once in one map; each key may appear once",
    ),
    (
        "syntax.yaml",
        "name: [unclosed\n",
        " is not valid YAML: expected ',' or ']', but got '<stream end>' (line 2)",
    ),
    ("number-keys.yaml", "1: x\n", ": 1: keys must be text, got int"),
    ("not-utf8.yaml", b"name: \xff\n", " is not UTF-8 text (byte 6)"),
    ("list.yaml", "- a\n- b\n", " must hold one JSON object (the job spec), got list"),
    # the same rules for JSON files
    (
        "duplicate.json",
        '{"name": "x", "name": "y"}',
        ": name: key 'name' appears more than once; each key may appear once",
    ),
    ("nan.json", '{"target": {"grad_norm": NaN}}', ": target.grad_norm: must be a finite number, got NaN"),
    (
        "surrogate.json",
        '{"name": "\\ud800"}',
        ": name: text holds a lone UTF-16 surrogate ('\\ud800') that UTF-8 cannot encode; send valid Unicode",
    ),
    (
        "deep.json",
        '{"a": ' + "[" * 3000 + "]" * 3000 + "}",
        f": {'.'.join(['a'] + ['0'] * 31)}: objects and arrays nest deeper than 32 levels",
    ),
    (
        "broken.json",
        '{"name": "x",',
        " is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 14)",
    ),
    ("markup.json", '{"name": "[/]"', " is not valid JSON: Expecting ',' delimiter (line 1, column 15)"),
]


@pytest.mark.parametrize(("name", "content", "line"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_spec_file_is_one_documented_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: str | bytes, line: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    rc = main(["submit", str(path), "--url", f"http://127.0.0.1:{free_port()}", "--token", "x"])
    out, err = capsys.readouterr()
    assert (rc, out) == (1, "")
    assert err == f"error: {path}{line}\n"


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: " + "x" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(ValueError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path} is {MAX_SPEC_BYTES + 7} bytes; a job spec file may be at most {MAX_SPEC_BYTES} bytes"
    )


def test_aliases_and_anchors_within_the_limits_still_work(tmp_path: Path) -> None:
    """YAML's own way to repeat a schedule is kept: a few aliases, and merge keys overriding a value."""
    path = tmp_path / "job.yaml"
    path.write_text(
        "lr: &lr {family: constant, lr0: 0.1}\n"
        "base: &base {family: constant, b0: 8}\n"
        "baselines:\n"
        "  - {name: a, batch_size: *base, lr: *lr}\n"
        "  - {name: b, batch_size: {<<: *base, b0: 16}, lr: *lr}\n"
    )
    spec = load_spec(path)
    assert spec["baselines"][1] == {
        "name": "b",
        "batch_size": {"family": "constant", "b0": 16},
        "lr": {"family": "constant", "lr0": 0.1},
    }
    assert json.loads(json.dumps(spec)) == spec
