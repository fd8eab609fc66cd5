"""The sections as Markdown (plots linked from RUN_DIR/plots/)."""

from __future__ import annotations

import html
import re

from siked.report.document import (
    Block,
    Bullets,
    Code,
    Details,
    Fields,
    Notice,
    Plot,
    Section,
    Subheading,
    Table,
)

PLOTS_DIR = "plots"
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&~|$])")
"""What would turn plain text into markup inline: emphasis, code, links, raw HTML, entities, table
cells, and GitHub's `$` math (word problems are full of dollars)."""


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_alignment(table: Table) -> list[str]:
    return ["---" if i < table.text_columns else "--:" for i in range(len(table.headers))]


def md_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(md_cell(h) for h in table.headers) + " |",
        "|" + "|".join(md_alignment(table)) + "|",
    ]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def md_fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def md_text(text: str) -> str:
    """Plain text (from the run's data) as inline Markdown on one line that renders as that text."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def md_code(block: Code) -> str:
    fence = md_fence(block.text)
    return f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}"


def md_details(block: Details) -> str:
    fence = md_fence(block.text)
    body = block.text.rstrip("\n")
    return f"<details>\n<summary>{html.escape(block.summary)}</summary>\n\n{fence}yaml\n{body}\n{fence}\n\n</details>"


def md_block(block: Block) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, Table):
        return md_table(block)
    if isinstance(block, Plot):
        return f"![{block.caption}]({PLOTS_DIR}/{block.name}.png)"
    if isinstance(block, Notice):
        return f"> **Note:** {block.text}"
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Subheading):
        return f"### {block.text}"
    if isinstance(block, Fields):
        return "\n".join(f"- **{label}:** {md_text(value)}" for label, value in block.items)
    if isinstance(block, Code):
        return md_code(block)
    return md_details(block)


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts += [md_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


