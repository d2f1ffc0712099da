"""redis-py clients for ChasquiMQ URLs.

`QueueEvents` and the result listener read the events stream with
redis.asyncio; this module gives them a client for every URL the engine
accepts: `redis://`, `rediss://` with the engine's TLS query parameters
(`tls_ca_file`, `tls_cert_file`, `tls_key_file`), and `redis-cluster://` /
`rediss-cluster://` with more seed nodes as `?node=host:port`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# The engine's TLS query parameters and the redis-py keyword for each.
TLS_PARAMS = {
    "tls_ca_file": "ssl_ca_certs",
    "tls_cert_file": "ssl_certfile",
    "tls_key_file": "ssl_keyfile",
}
SCHEMES = (
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "valkey",
    "valkeys",
    "valkey-cluster",
    "valkeys-cluster",
)


def is_tls(scheme: str) -> bool:
    return scheme.startswith(("rediss", "valkeys"))


def is_cluster(scheme: str) -> bool:
    return scheme.endswith("-cluster")


def client(url: str, **kw: Any) -> Any:
    """A redis.asyncio client (a `RedisCluster` for cluster URLs) for `url`;
    `kw` are redis-py connection options (timeouts, decode_responses)."""
    # redis-py is imported here, not at module level: URL validation (which
    # uses this module's scheme tables) must not need it.
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    cluster = is_cluster(scheme)
    rest: list[tuple[str, str]] = []
    nodes: list[ClusterNode] = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in TLS_PARAMS:
            kw[TLS_PARAMS[k]] = v
        elif k == "node" and cluster:
            host, _, port = v.rpartition(":")
            nodes.append(ClusterNode(host, int(port)))
        else:
            rest.append((k, v))
    plain = urlunsplit(
        (
            "rediss" if is_tls(scheme) else "redis",
            parts.netloc,
            "" if cluster else parts.path,
            urlencode(rest),
            "",
        )
    )
    if cluster:
        if nodes:
            kw["startup_nodes"] = nodes
        return RedisCluster.from_url(plain, **kw)
    return aioredis.from_url(plain, **kw)
