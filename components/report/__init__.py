"""The RunReport step: `component.py` (the TFX component), `data.py` (what it gathers from the run's
artifacts), `figures.py` (matplotlib / Pillow figures) and `html.py` with `report.html.j2` (the page)."""

# Neighbour-grid queries per class: the RunReport's default and `simsiam-tfx report --queries-per-class`'s
# (here, so that the command's --help reads it without importing TFX).
DEFAULT_QUERIES_PER_CLASS = 2
