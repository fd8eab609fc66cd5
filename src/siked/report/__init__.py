"""The run report: `report.md` and a self-contained `report.html` from a run's metrics.json and config.yaml,
and, for the best model's wrong answers, its stored evaluation outputs (`siked.report.failures`).

Both documents are rendered from one list of sections, so they always say the same thing. Plots are drawn
on matplotlib's Agg canvas (no display, no global pyplot state), saved as PNG files under RUN_DIR/plots/ for
the Markdown and embedded as base64 data URIs in the HTML, which therefore needs no other file.

metrics.json may be partial (a run still in progress): whatever is there is rendered, and a "Missing"
section lists what is not there yet.
"""

from siked.evaluation import wilson_interval
from siked.report.compare import compare_runs
from siked.report.view import ReportError
from siked.report.write import write_report

__all__ = ["ReportError", "compare_runs", "wilson_interval", "write_report"]
