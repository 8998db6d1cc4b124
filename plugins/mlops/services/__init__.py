"""Services: one function per pipeline step (training unless nothing is new, gate, deploy, smoke test,
monitor, reproduce) that orchestrates the I/O around a core decision. The Airflow operators and the tooling
call these.

May import every runtime package below it (monitoring, registry, ml, data, core, config); never the Airflow
shell, the serving app or the tooling.
"""
