"""The report: its tables, plots, and the page (templates/report.html.j2)."""
