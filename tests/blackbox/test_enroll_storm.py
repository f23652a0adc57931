"""200 clients enroll with one CA at the same instant.

The thesis's server failed somewhere between 150 and 300 clients because its
listen backlog was 1. Here 200 threads, released together by a barrier, each
connect, send a get/csr and wait for the reply; every one must get a
certificate for its own name and key that the root vouches for.
"""

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import snoopwire as w
from snoopnodes import wait_until

CLIENTS = 200
STORM_LIMIT = 120        # seconds for the whole storm, barrier to last reply
REPLY_TIMEOUT = 90       # seconds one client waits for its reply


@pytest.fixture(scope="module")
def storm_keys(request):
    """CLIENTS RSA-2048 keys, cached between runs (making them takes a while).

    These are throw-away test keys; the cache lives in pytest's cache
    directory and is rebuilt if anything about it looks wrong.
    """
    cache_dir = None
    if request.config.pluginmanager.hasplugin("cacheprovider"):
        cache_dir = request.config.cache.mkdir("snoopfs_storm_keys")
    keys = [None] * CLIENTS

    def load_or_make(i):
        path = cache_dir / ("%03d.pem" % i) if cache_dir else None
        if path is not None and path.exists():
            try:
                return w.key_from_pem(path.read_bytes())
            except ValueError:
                pass
        key = w.new_key()
        if path is not None:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(w.key_to_pem(key))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        return key

    # Key generation releases the GIL, so threads use every CPU.
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as ex:
        keys = list(ex.map(load_or_make, range(CLIENTS)))
    assert len({w.spki(k) for k in keys}) == CLIENTS
    return keys


def test_enroll_storm(storm_keys, cluster):
    ca = cluster.init_ca("ca")
    root = ca.root()
    ca_addr = ca.addr

    # Everything but the network exchange is prepared before the barrier.
    names = ["storm-%03d" % i for i in range(CLIENTS)]
    addresses = ["127.0.0.1:%d" % (40000 + i) for i in range(CLIENTS)]
    # Each with its own join token, made before the barrier like the rest.
    tokens = [cluster.token(n) for n in names]
    requests = [w.csr_request(names[i], storm_keys[i], addresses[i],
                              token=tokens[i])
                for i in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS, timeout=60)
    results = [None] * CLIENTS

    def client(i):
        try:
            barrier.wait()
            t0 = time.monotonic()
            reply = w.exchange(ca_addr, requests[i], timeout=REPLY_TIMEOUT)
            results[i] = ("reply", reply, time.monotonic() - t0)
        except (OSError, socket.timeout, w.WireError,
                threading.BrokenBarrierError) as e:
            results[i] = ("exception", e, None)

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(CLIENTS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1, STORM_LIMIT + 30 - (time.monotonic() - start)))
    elapsed = time.monotonic() - start
    stuck = [names[i] for i, t in enumerate(threads) if t.is_alive()]
    assert not stuck, "%d clients still waiting after %.0f s" % (len(stuck), elapsed)

    failures = []
    serials = {}
    for i, res in enumerate(results):
        name, key = names[i], storm_keys[i]
        kind, value, _ = res
        if kind == "exception":
            failures.append("%s: %r" % (name, value))
            continue
        if value is None:
            failures.append("%s: connection dropped" % name)
            continue
        try:
            w.check_reply_to(value, requests[i], "get/csr")
        except w.WireError as e:
            failures.append("%s: bad reply: %s" % (name, e))
            continue
        er = w.EnrollResult(requests[i], value)
        if not er.ok:
            failures.append("%s: refused: %r" % (name, value.extra.get("error")))
            continue
        problems = []
        if w.cert_cn(er.cert) != name:
            problems.append("CN %r" % w.cert_cn(er.cert))
        if w.spki(er.cert) != w.spki(key):
            problems.append("certificate is for another key")
        if not w.issued_by(er.cert, root):
            problems.append("not issued by the root")
        if er.root != root:
            problems.append("reply carries another root")
        if not value.verify_with(er.ca_cert):
            problems.append("reply signature does not verify")
        if problems:
            failures.append("%s: %s" % (name, ", ".join(problems)))
        serials[name] = er.cert.serial_number
        # Later requests as NAME go over TLS with this certificate.
        w.remember(name, key, er.cert, root)

    assert not failures, "%d of %d clients failed:\n%s" % (
        len(failures), CLIENTS, "\n".join(failures[:30]))
    assert elapsed < STORM_LIMIT, "the storm took %.1f s" % elapsed
    assert len(set(serials.values())) == CLIENTS, "serial numbers repeat"

    # The CA remembers all of them: in its tree and over the wire.
    want = set(names) | {"ca"}
    assert wait_until(lambda: want <= ca.cert_names(), 15), (
        "missing from the CA's certs/: %s" % sorted(want - ca.cert_names())[:20])
    certs, _ = w.get_all_certs(ca_addr, names[0], storm_keys[0], timeout=30)
    listed = [w.cert_cn(c) for c in certs if c != root]
    assert want <= set(listed), sorted(want - set(listed))[:20]
    assert len(listed) == len(set(listed)), "a certificate is listed twice"
