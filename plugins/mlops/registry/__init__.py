"""The model registry: MLflow versions, aliases, compare-and-set promotion, audit, lineage, governance, cards.

Owns every read and write of MLflow's registry and the tag conventions on versions and runs (``tags``).
``versions`` holds the one MLflow client factory and the version, alias, promotion and audit operations; ``governance`` adds semantic versions,
lineage and the audit report; ``integrity`` records each version's digest and is the one way to load a model; ``cards`` builds model cards. May import ``mlops.config``, ``mlops.core``,
``mlops.errors``; never the services, the monitoring, the serving or the Airflow shell.
"""

from mlops.registry.governance import register_version
from mlops.registry.integrity import (
    DIGEST_TAG,
    ModelIntegrityError,
    load_model_folder,
    load_verified_model,
    verified_model,
    verified_model_path,
)
from mlops.registry.versions import (
    AUDIT_PREFIX,
    CHALLENGER,
    CHAMPION,
    alias_version,
    audit_trail,
    client,
    create_version,
    get_version,
    move_champion,
    promote,
    promotion_lock,
    record_audit,
    set_version_tags,
    training_lock,
)

__all__ = [
    "AUDIT_PREFIX",
    "CHALLENGER",
    "CHAMPION",
    "DIGEST_TAG",
    "ModelIntegrityError",
    "alias_version",
    "audit_trail",
    "client",
    "create_version",
    "get_version",
    "load_model_folder",
    "load_verified_model",
    "move_champion",
    "promote",
    "promotion_lock",
    "training_lock",
    "record_audit",
    "register_version",
    "set_version_tags",
    "verified_model",
    "verified_model_path",
]
