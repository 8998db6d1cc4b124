"""Data: storage (local paths and ``s3://`` through one interface), batches (ingest, content hashes,
quarantine), validation (Great Expectations) and the inference log's format and reader.

May import ``mlops.config``, ``mlops.core`` and ``mlops.errors``.
"""
