"""Column alignment exactly like Go's text/tabwriter, which kubectl prints through.

Text is lines of tab-terminated cells. The text after a line's last tab is
not part of any column, so it is never padded (no trailing blanks on table
rows). A column is a run of consecutive lines that all have a cell in it;
its width is the widest cell plus `padding`, at least `minwidth`. Columns
to the right are laid out independently inside each such run, which is why

    Name:       web
    Namespace:  default
    Containers:
      nginx:
        Image:  nginx

aligns "Name"/"Namespace" together but "Image" on its own: the lines
without tabs end the first block.

kubectl get uses minwidth 6, padding 3; kubectl describe minwidth 0,
padding 2 (and flushes before the events table, so it starts new columns).
"""

from __future__ import annotations

GET_MINWIDTH, GET_PADDING = 6, 3
DESCRIBE_MINWIDTH, DESCRIBE_PADDING = 0, 2


def align(text: str, *, minwidth: int, padding: int) -> str:
    """Lay out `text` ("\\t" between cells, "\\n" between lines) in aligned columns."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(start: int, end: int) -> None:
        for i in range(start, end):
            cells = lines[i]
            parts = [c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells)]
            out.append("".join(parts))

    def format_block(start: int, end: int) -> None:
        column = len(widths)
        this = start
        while this < end:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # A block of lines with a cell in this column starts here.
            write_lines(start, this)
            start = this
            width = minwidth
            while this < end and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(start, this)
            widths.pop()
            start = this
        write_lines(start, end)

    format_block(0, len(lines))
    return "\n".join(out)


def table(rows: list[list[str]]) -> str:
    """kubectl get's layout of rows of cells, every line newline-terminated."""
    if not rows:
        return ""
    text = "".join("\t".join(row) + "\n" for row in rows)
    return align(text, minwidth=GET_MINWIDTH, padding=GET_PADDING)
