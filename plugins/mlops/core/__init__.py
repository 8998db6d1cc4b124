"""The pure core of decisions: the gate verdict and its checks, slice and fairness rules, the monitoring
policy, the canary judgement and semantic versions.

No I/O and no heavy imports: every function here is a function of its arguments, tested without MLflow, a
scheduler or files. May import ``mlops.config`` and ``mlops.errors`` only.
"""
