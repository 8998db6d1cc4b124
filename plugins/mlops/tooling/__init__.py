"""Tooling for people: the ``mlops`` command line, the demo story, the simulation and the native production
stack. Nothing in the runtime (DAGs, operators, the model server) imports it.
"""
