"""Registrations as nerve, Finagle ServerSets and Curator write them (README "Other
registries"), made with kazoo against the test's ZooKeeper: the registry tests and the
per-service registry tests share them.

    kz                     fixture: a kazoo client in the test's chroot
    nerve_register, serverset_data, serverset_join, curator_data, curator_register
    counts_under(ctl, path)  {host:port: count} under a counts path
"""

import json
import uuid

import pytest

from zk import zk, zk_server  # noqa: F401  (fixtures are used by name)

kazoo_client = pytest.importorskip("kazoo.client")

COUNTS = "/ringmaster/counts/default"


@pytest.fixture
def kz(zk):
    """A kazoo client in the test's chroot: it stands in for nerve, Finagle and Curator."""
    client = kazoo_client.KazooClient(hosts=zk.connect, timeout=10.0)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


# ---------------------------------------------------------------------------------------
# Registrations as each tool writes them

def nerve_register(kz, zk_path, backend, instance_id, weight=None, path_encoding=False):
    """nerve's ZooKeeper reporter: ephemeral sequential <zk_path>/<instance_id>_, data
    {"host", "port", "name", "weight"?}; with use_path_encoding the child is named
    base64_<length>_<urlsafe base64 of the data>_ (the data is written too)."""
    host, port = backend.addr.rsplit(":", 1)
    data = {"host": host, "port": int(port), "name": instance_id}
    if weight is not None:
        data["weight"] = weight
    text = json.dumps(data, separators=(",", ":"))
    if path_encoding:
        import base64
        encoded = base64.urlsafe_b64encode(text.encode()).decode()
        prefix = "base64_%d_%s_" % (len(encoded), encoded)
    else:
        prefix = instance_id + "_"
    return kz.create("%s/%s" % (zk_path, prefix), text.encode(), ephemeral=True, sequence=True,
                     makepath=True)


def serverset_data(host, port, status="ALIVE", additional=None, shard=None):
    data = {"serviceEndpoint": {"host": host, "port": port},
            "additionalEndpoints": additional or {}, "status": status}
    if shard is not None:
        data["shard"] = shard
    return json.dumps(data).encode()


def serverset_join(kz, path, data):
    """ServerSetImpl.join: ephemeral sequential <path>/member_, the JSON codec's data."""
    return kz.create(path + "/member_", data, ephemeral=True, sequence=True, makepath=True)


def curator_data(name, instance_id, address, port, enabled=None, ssl_port=None):
    data = {"name": name, "id": instance_id, "address": address, "port": port,
            "sslPort": ssl_port, "payload": None, "registrationTimeUTC": 1325129459728,
            "serviceType": "DYNAMIC", "uriSpec": None}
    if enabled is not None:
        data["enabled"] = enabled
    return json.dumps(data).encode()


def curator_register(kz, base, name, backend, enabled=None):
    """ServiceDiscoveryImpl.registerService: <base>/<name>/<id>, EPHEMERAL for DYNAMIC."""
    instance_id = str(uuid.uuid4())
    host, port = backend.addr.rsplit(":", 1)
    path = "%s/%s/%s" % (base, name, instance_id)
    kz.create(path, curator_data(name, instance_id, host, int(port), enabled), ephemeral=True,
              makepath=True)
    return path


def counts_under(ctl, path=COUNTS):
    return {n: int(ctl.get("%s/%s" % (path, n)) or 0) for n in ctl.ls(path) or []}
