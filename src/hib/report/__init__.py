"""Turn results.json into PNG figures and one self-contained report.html."""

from hib.report.html import write_report

__all__ = ["write_report"]
