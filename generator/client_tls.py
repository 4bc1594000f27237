"""Client-side TLS for the processor's Redis connection: verify the server's certificate and host name.

ElastiCache's in-transit encryption presents certificates that chain to Amazon's public certificate authorities
(https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/in-transit-encryption.html), so the image's system trust
store (the `ca-certificates` package) verifies them; no bundle is packaged. The processor and the API function hand
redis-py the same settings (`ssl=True`, `ssl_cert_reqs="required"`, `ssl_check_hostname=True`, TLS 1.2 at least:
processor/cache_connection.py and its copy in generator/functions/video_jobs/jobs/), redis-py taking no context. The database's clients verify against the RDS certificate
authorities instead (generator/functions/db_bootstrap/rds-ca-bundle.pem): RDS's are in no public trust store.

Standard library only, so that the processor's package can carry this module as it is.
"""

from __future__ import annotations

import ssl


def redis_tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A context that refuses any server whose certificate does not chain to `cafile` (default: the system's
    public certificate authorities) or does not name the host connected to."""
    context = ssl.create_default_context(cafile=cafile)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context

