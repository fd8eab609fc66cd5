"""The sections as Markdown (plots linked from RUN_DIR/plots/)."""

from __future__ import annotations

import html
import re

from siked.report.document import Block, Bullets, Notice, Plot, Section, Table

PLOTS_DIR = "plots"


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
    fence = md_fence(block.text)
    body = block.text.rstrip("\n")
    return f"<details>\n<summary>{html.escape(block.summary)}</summary>\n\n{fence}yaml\n{body}\n{fence}\n\n</details>"


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts += [md_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


