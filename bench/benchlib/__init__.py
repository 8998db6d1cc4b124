"""What the benchmarks in ``bench/`` share: one small library instead of a copy in every script.

Modules (each imported on its own, ``from benchlib.tables import machine_table``):

- ``repo``: where things are (the checkout, the venv's ``bin``, the pipelines, ``docs/benchmarks.md``), ``git``,
  the commit measured and its uncommitted changes, environments without the kit's settings.
- ``machine``: the facts every benchmark states next to its figures (CPU, cores, memory, OS, package versions),
  the load average, and how busy the cores are (waiting for a quiet machine).
- ``processes``: CPU time and memory of this process, of a process group (a server and its children), peak
  RSS; running a Python child and reading its result.
- ``timing``: repeated timings (``Sample``, ``median_call``) and ``CpuClock``, who used the cores meanwhile.
- ``ports``: a free TCP port on 127.0.0.1.
- ``http``: one HTTP request to a local server (httpx, no proxies), status and body.
- ``servers``: a server under test in a subprocess: start it on a free port, wait until ready (tenacity + httpx),
  keep its log, stop it and its children.
- ``tables``: Markdown tables (the machine table every section has) and number formatting.
- ``sections``: rewrite one ``<!-- BEGIN name -->`` ... ``<!-- END name -->`` section of a Markdown file.

The scripts run as ``.venv/bin/python bench/<script>.py``: Python puts ``bench/`` first on ``sys.path``, which is
how they find this package (and ``serving_bench``, ``monitoring_bench``); nothing is installed.
"""
