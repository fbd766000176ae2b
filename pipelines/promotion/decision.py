"""The report states the decision as recorded: a review (Airflow, CLI or a timeout) rewrites the
report's decision paragraph, so a report never says "waiting for approval" after someone decided."""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

from pipelines.artifacts import write_atomic

START, END = "<!--retune:decision-->", "<!--/retune:decision-->"
_REGION = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)


def record_decision(report: Path, decision: str, actor: str, reason: str, at: datetime) -> bool:
    """Replace the report's decision paragraph with what was recorded; False when the report (or
    its marked paragraph, in reports written before this existed) is not there."""
    if not report.is_file():
        return False
    text = report.read_text(encoding="utf-8")
    if START not in text:
        return False
    paragraph = (
        f'{START}<p id="decision"><b>Decision recorded {at:%Y-%m-%d %H:%M %Z}: {html.escape(decision)}</b>'
        f" — by <code>{html.escape(actor)}</code>: {html.escape(reason)}.</p>{END}"
    )
    write_atomic(report, _REGION.sub(lambda _: paragraph, text, count=1))
    return True
