"""`write_report`: report.md, plots/ and report.html of a run directory, each written atomically."""

from __future__ import annotations

from pathlib import Path

from siked.io import atomic_path
from siked.metrics import load_metrics
from siked.report.document import Plot
from siked.report.htmlpage import render_html
from siked.report.markdown import PLOTS_DIR, render_markdown
from siked.report.sections import build_sections, report_title
from siked.report.view import make_view, read_config

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file so a reader never sees half a report."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Write RUN_DIR/report.md (plots under RUN_DIR/plots/) and a self-contained RUN_DIR/report.html."""
    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir)
    view = make_view(run_dir, metrics, read_config(run_dir))
    sections = build_sections(view)
    title = report_title(view)
    plots_dir = run_dir / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    for section in sections:
        for block in section.blocks:
            if isinstance(block, Plot):
                write_atomic(plots_dir / f"{block.name}.png", block.png)
    md_path, html_path = run_dir / REPORT_MD, run_dir / REPORT_HTML
    write_atomic(md_path, render_markdown(title, sections).encode("utf-8"))
    write_atomic(html_path, render_html(title, sections).encode("utf-8"))
    return md_path, html_path


