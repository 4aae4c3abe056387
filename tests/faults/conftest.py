"""Fault tests reuse the integration fixtures: the real Redis, PostgreSQL and S3 server."""

from tests.integration.conftest import (  # noqa: F401
    db_settings,
    prefix,
    redis,
    s3_endpoint,
    settings,
)
