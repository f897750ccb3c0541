"""The RunReport step: `component.py` (the TFX component), `data.py` (what it gathers from the run's
artifacts), `figures.py` (matplotlib / Pillow figures) and `html.py` with `report.html.j2` (the page)."""
