"""The sections as one self-contained HTML page (plots embedded as data URIs)."""

from __future__ import annotations

import base64
import html
import re

from siked.report.document import (
    Block,
    Bullets,
    Code,
    Fields,
    Notice,
    Plot,
    Section,
    Subheading,
    Table,
)

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 1100px; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: right; }
th.text, td.text { text-align: left; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: .85rem; color: #57606a; }
.notice { background: #fff8c5; border-left: 4px solid #d4a72c; padding: .6rem .9rem; font-weight: 600; }
details { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem .8rem; }
summary { cursor: pointer; font-weight: 600; }
pre { overflow-x: auto; font-size: .85rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
ul.fields { list-style: none; padding-left: 0; margin: 1rem 0 .3rem; }
pre.solution { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem .8rem;
               white-space: pre-wrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
"""


def esc(text: str) -> str:
    """Escape text content; `code` spans written with backticks become <code>."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def html_cells(tag: str, cells: list[str], text_columns: int) -> str:
    return "".join(
        f'<{tag} class="text">{esc(c)}</{tag}>' if i < text_columns else f"<{tag}>{esc(c)}</{tag}>"
        for i, c in enumerate(cells)
    )


def html_table(table: Table) -> str:
    head = html_cells("th", table.headers, table.text_columns)
    body = "".join(f"<tr>{html_cells('td', row, table.text_columns)}</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_block(block: Block) -> str:
    if isinstance(block, str):
        return f"<p>{esc(block)}</p>"
    if isinstance(block, Table):
        return html_table(block)
    if isinstance(block, Plot):
        data = base64.b64encode(block.png).decode("ascii")
        alt = html.escape(block.caption, quote=True)
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>")
    if isinstance(block, Notice):
        return f'<p class="notice">{esc(block.text)}</p>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Subheading):
        return f"<h3>{esc(block.text)}</h3>"
    if isinstance(block, Fields):
        return '<ul class="fields">' + "".join(
            f"<li><strong>{esc(label)}:</strong> {html.escape(value, quote=False)}</li>"
            for label, value in block.items) + "</ul>"
    if isinstance(block, Code):
        return f'<pre class="solution"><code>{html.escape(block.text.rstrip(), quote=False)}</code></pre>'
    return (f"<details><summary>{esc(block.summary)}</summary>"
            f"<pre><code>{html.escape(block.text, quote=False)}</code></pre></details>")


def render_html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        parts += [html_block(block) for block in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


