"""Tables that fit the terminal (80 columns and up): columns by priority, key columns never cut.

Rich shrinks every column of a table that is too wide, down to nothing (``schedsearch jobs`` at 80 columns
printed the status, trials and best columns at zero width). ``fit_table`` decides the layout itself from the
console width:

- a key column (priority 0: ids, status, the numbers a row is about) keeps the width of its longest value;
  its header may wrap at spaces;
- while the table is too wide, the least important column goes: folded as a second line under its
  ``fold_into`` column when it has one, else dropped (the caption names what was dropped);
- a flexible column (``flex`` > 0: names, one-line schedule summaries) stays on one line, cut with "…" when
  space is short but never narrower than ``flex`` cells, and takes the spare width up to its whole text.

Every cell is one line (its text is never wrapped), so a row is one line plus one line of folded columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.table import Table
from rich.text import Text

Justify = Literal["left", "right", "center"]
Cell = str | Text

# A table with n columns and rich's default box spends 3 cells per column (two of padding, one rule) plus one.
_RULE_PER_COLUMN = 3


@dataclass(frozen=True)
class Column:
    """``header``; ``priority`` 0 keeps the column at any width, higher numbers go first; ``flex`` > 0 lets
    the column be cut to that many cells; ``fold_into`` names the column it folds under instead of being
    dropped."""

    header: str
    priority: int = 0
    justify: Justify = "left"
    flex: int = 0
    fold_into: str | None = None


def as_text(cell: Cell) -> Text:
    """A cell as one rich Text: strings are rich markup (escape untrusted values with
    ``rich.markup.escape``)."""
    return cell.copy() if isinstance(cell, Text) else Text.from_markup(cell)


def _len(text: Text) -> int:
    return max((line.cell_len for line in text.split(allow_blank=True)), default=0)


def _header_min(header: str) -> int:
    """The narrowest width at which ``header`` wraps at spaces into at most two lines."""
    words = header.split()
    for width in range(max((len(w) for w in words), default=0), len(header) + 1):
        lines, used = 1, -1
        for word in words:
            if used + 1 + len(word) > width:
                lines, used = lines + 1, len(word)
            else:
                used += 1 + len(word)
        if lines <= 2:
            return width
    return len(header)


def fit_table(
    width: int,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    show_header: bool = True,
) -> Table:
    """A rich Table of ``rows`` (one cell per column, in order) laid out for ``width`` console cells."""
    cells = [[as_text(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells for {len(columns)} columns")
    content = [max((_len(row[i]) for row in cells), default=0) for i in range(len(columns))]

    def need(i: int) -> int:
        col = columns[i]
        if col.flex:
            return max(min(content[i], col.flex), _header_min(col.header) if show_header else 0)
        return max(content[i], _header_min(col.header) if show_header else 0)

    def total(active: list[int]) -> int:
        return sum(need(i) for i in active) + _RULE_PER_COLUMN * len(active) + 1

    active = list(range(len(columns)))
    folded: dict[int, list[int]] = {}
    dropped: list[str] = []
    names = {col.header: i for i, col in enumerate(columns)}
    while total(active) > width:
        candidates = [i for i in active if columns[i].priority > 0]
        if not candidates:
            break
        victim = max(candidates, key=lambda i: (columns[i].priority, i))
        active.remove(victim)
        host = names.get(columns[victim].fold_into or "")
        if host is not None and host in active:
            folded.setdefault(host, []).append(victim)
        else:
            dropped.append(columns[victim].header)

    widths = {i: need(i) for i in active}
    spare = width - total(active)

    # The spare width goes to the flexible columns (most important first, up to their whole text: a name or a
    # schedule says more than a header on one line), then to headers that would wrap.
    def grow(i: int, upto: int) -> None:
        nonlocal spare
        extra = min(spare, upto - widths[i])
        if extra > 0:
            widths[i] += extra
            spare -= extra

    for i in sorted(active, key=lambda i: (columns[i].priority, i)):
        if columns[i].flex:
            grow(i, content[i])
    for i in active:
        if show_header:
            grow(i, len(columns[i].header))

    caption = f"not shown at this width: {', '.join(dropped)}" if dropped else None
    table = Table(title=title, caption=caption, show_header=show_header)
    for i in active:
        col = columns[i]
        table.add_column(col.header, justify=col.justify, width=widths[i], no_wrap=False)
    for row in cells:
        out = []
        for i in active:
            text = row[i]
            if i in folded:
                under = sorted(folded[i], key=lambda j: (columns[j].priority, j))
                extra = Text("  ").join(row[j] for j in under if row[j].plain)
                if extra.plain:
                    extra.stylize("dim")
                    text = Text.assemble(text, "\n", extra)
            text.no_wrap, text.overflow = True, "ellipsis"
            out.append(text)
        table.add_row(*out)
    return table
