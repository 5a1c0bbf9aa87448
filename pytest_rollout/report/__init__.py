"""The evidence dashboard: HTML pages and timeline charts built from a report directory.

``python -m pytest_rollout.report DIR`` (re)builds ``DIR/index.html`` and, per experiment,
``DIR/<experiment>/index.html`` and ``timeline.png``. The modules each do one thing:
:mod:`.model` reads the directory into typed objects, :mod:`.traffic` bins a traffic log,
:mod:`.charts` draws, :mod:`.pages` writes HTML, :mod:`.build` puts them together,
:mod:`.session` and :mod:`.markdown` write the session record and the CI summary.

Importing this package does not import matplotlib; :mod:`.build` does.
"""
