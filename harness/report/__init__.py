"""The HTML report of a run: one portable folder with inline CSS and inline SVG plots."""
from harness.report.render import render_report

__all__ = ["render_report"]
