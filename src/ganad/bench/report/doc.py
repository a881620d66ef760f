"""The report's document model: each heading, paragraph, table and figure is described once and
rendered to both Markdown (``report.md``) and HTML (``report.html``).

Before this module the report wrote every element twice, by hand, in about forty places; a fix to
one format was easily missed in the other. :class:`Page` is the only writer of either format.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


def md_cell(text: str) -> str:
    """A Markdown table cell's text: a '|' inside it (a model label, a platform string) would split the cell."""
    return str(text).replace("|", "\\|")


@dataclass
class Cell:
    """One table cell: its text, whether it is the best of its column (bold, shaded), and a CSS class."""

    text: str
    best: bool = False
    css: str = ""

    def markdown(self) -> str:
        return md_cell(f"**{self.text}**" if self.best else self.text)

    def html(self) -> str:
        # the "± std" part gets its own span, so a table with ten class columns can put it on a
        # second, smaller line instead of scrolling sideways
        mean, sep, std = html.escape(self.text).partition(" ± ")
        inner = f"{mean}<span class='sd'> ± {std}</span>" if sep else mean
        css = " ".join(c for c in (self.css, "best" if self.best else "") if c)
        return f"<td class='{css}'>{inner}</td>" if css else f"<td>{inner}</td>"


def _md(c: Cell | str) -> str:
    return c.markdown() if isinstance(c, Cell) else md_cell(str(c))


def _html(c: Cell | str) -> str:
    """A :class:`Cell` (a number: bold when best, its "± std" on its own line) or plain text as is."""
    return c.html() if isinstance(c, Cell) else f"<td>{html.escape(str(c))}</td>"


@dataclass
class Table:
    """A table with a header row; ``rows`` hold :class:`Cell` (numbers) or plain text."""

    head: list[str]
    rows: list[list[Cell | str]] = field(default_factory=list)
    css: str = ""

    def add(self, *cells: Cell | str) -> None:
        self.rows.append(list(cells))

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.head) + " |", "|" + "---|" * len(self.head)]
        lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        return (
            f"<div class='scroll'><table class='{self.css}'><tr>"
            + "".join(f"<th>{html.escape(x)}</th>" for x in self.head)
            + "</tr>"
            + "".join("<tr>" + "".join(_html(c) for c in r) + "</tr>" for r in self.rows)
            + "</table></div>"
        )


class Page:
    """A report page (or part of one) built element by element, kept as Markdown and HTML together."""

    def __init__(self) -> None:
        self.md: list[str] = []
        self.html: list[str] = []

    def extend(self, other: Page) -> None:
        self.md += other.md
        self.html += other.html

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        self.md += [f"{'#' * level} {text}", ""]
        ident = f" id='{html.escape(anchor)}'" if anchor else ""
        self.html.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str = "") -> None:
        self.md += [text, ""]
        self.html.append(f"<p class='{css}'>{html.escape(text)}</p>" if css else f"<p>{html.escape(text)}</p>")

    def note(self, text: str, css: str = "note") -> None:
        """An aside in italics (Markdown) / a note paragraph (HTML)."""
        self.md += [f"_{text}_", ""]
        self.html.append(f"<p class='{css}'>{html.escape(text)}</p>" if css else f"<p><i>{html.escape(text)}</i></p>")

    def quote(self, text: str) -> None:
        self.md += [f"> {text}", ""]
        self.html.append(f"<p class='note'>{html.escape(text)}</p>")

    def table(self, table: Table) -> None:
        self.md += [table.markdown(), ""]
        self.html.append(table.html())

    def facts(self, rows: list[tuple[str, str]], *, markdown_table: bool = True) -> None:
        """Name / value pairs: a two-column table (or, with ``markdown_table=False``, a Markdown list)."""
        if markdown_table:
            self.md += ["| | |", "|---|---|", *[f"| {md_cell(k)} | {md_cell(v)} |" for k, v in rows], ""]
        else:
            self.md += [*[f"- {k}: {v}" for k, v in rows], ""]

        def value(v: str) -> str:
            if v.startswith(("https://", "http://")):
                return f"<a href='{html.escape(v)}'>{html.escape(v)}</a>"
            return html.escape(v)

        self.html.append(
            "<table class='setup'>"
            + "".join(f"<tr><th>{html.escape(k)}</th><td>{value(v)}</td></tr>" for k, v in rows)
            + "</table>"
        )

    def bullets(self, items: list[str], title: str = "", css: str = "", code_prefix: bool = False) -> None:
        """A list; with ``code_prefix`` each item's text before the first ': ' is shown as code."""

        def md_item(t: str) -> str:
            if code_prefix:
                head, _, rest = t.partition(": ")
                return f"- `{head}`: {rest}"
            return f"- {md_cell(t)}"

        def html_item(t: str) -> str:
            if code_prefix:
                head, _, rest = t.partition(": ")
                return f"<li><code>{html.escape(head)}</code>: {html.escape(rest)}</li>"
            return f"<li>{html.escape(t)}</li>"

        if title:
            self.md += [f"**{title}**", ""]
            self.html.append(f"<p><b>{html.escape(title)}</b></p>")
        self.md += [*[md_item(t) for t in items], ""]
        cls = f" class='{css}'" if css else ""
        self.html.append(f"<ul{cls}>" + "".join(html_item(t) for t in items) + "</ul>")

    def contents(self, entries: list[tuple[str, str]]) -> None:
        """A numbered table of contents of (anchor, title) pairs."""
        self.md += [f"{i}. {title}" for i, (_, title) in enumerate(entries, 1)] + [""]
        self.html.append(
            "<nav><b>Contents</b><ol>"
            + "".join(f"<li><a href='#{html.escape(a)}'>{html.escape(t)}</a></li>" for a, t in entries)
            + "</ol></nav>"
        )

    def figure(self, path: Path, caption: str, note: str = "") -> None:
        """A PNG beside the page (Markdown links it; HTML embeds it, so the page is one file)."""
        self.md += [f"![{caption}](figures/{path.name})", "", f"*{caption}.{note}*", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}.{html.escape(note)}</figcaption></figure>"
        )

    def markdown(self) -> str:
        return "\n".join(self.md) + "\n"

    def html_page(self, title: str, marker: str) -> str:
        return HTML.format(marker=marker, title=html.escape(title), body="\n".join(self.html))


HTML = """<!DOCTYPE html>
{marker}
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ganad report: {title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1120px; margin: 2em auto;
        padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 2px solid #ccc; margin-top: 2.5em; padding-bottom: .2em; }}
h3 {{ margin-top: 1.6em; font-size: 1.1em; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; margin: .6em 0 1em; font-size: 0.88em; font-variant-numeric: tabular-nums; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
td.best {{ font-weight: bold; background: #e3f2e5; }}
td.chance {{ font-style: italic; color: #555; }}
ul.warnings li {{ color: #8a1c1c; }}
table.pub td:nth-child(4) {{ text-align: left; }}
.sd {{ font-size: 0.85em; color: #555; }} table.classes .sd {{ display: block; }}
table.setup th {{ text-align: left; vertical-align: top; width: 16em; white-space: normal; }}
table.setup td {{ text-align: left; white-space: normal; }}
.meta, figcaption, .note, .caveat {{ color: #555; font-size: 0.9em; }}
.note {{ background: #fff8e1; border-left: 4px solid #f0c040; padding: .4em .8em; }}
.caveat {{ font-style: italic; }}
nav ol {{ margin-top: .3em; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
</style></head><body>
{body}
</body></html>
"""
