"""Short-lived certificates: automatic renewal and the expired-node message.

Time travel is libfaketime (Debian package `faketime`): every snoopfs
process of a cluster (the CA and the nodes, and the daemons they fork) runs
under the same FAKETIME offset, because the protocol refuses messages dated
more than 300 s away from the receiver's clock. Node certificates last 7
days and renew at two-thirds of their life (4 days 16 hours).
"""

import re
import shutil
import time
from pathlib import Path

import pytest

from snoopnodes import (build_refreshing, cert_info, openssl, preload_faketime,
                        wait_until)

REFRESH = 2
RENEW_TIMEOUT = 10 * REFRESH + 20


def libfaketime():
    for d in ("/usr/lib/x86_64-linux-gnu/faketime",
              "/usr/lib/aarch64-linux-gnu/faketime", "/usr/lib/faketime"):
        p = Path(d) / "libfaketime.so.1"
        if p.exists():
            return str(p)
    return None


@pytest.fixture
def faketime():
    lib = libfaketime()
    if lib is None or shutil.which("faketime") is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return lib


def travel(snoop, lib, offset):
    """Runs every later snoopfs command (and daemon) OFFSET in the future."""
    if offset is None:
        preload_faketime(snoop.env, None)
        snoop.env.pop("FAKETIME", None)
        return
    preload_faketime(snoop.env, lib)
    snoop.env["FAKETIME"] = offset
    # The fake clock also drives the refresher's timed waits.
    snoop.env.pop("FAKETIME_DONT_FAKE_MONOTONIC", None)


def test_renewal_and_expiry(cluster, faketime):
    c = cluster
    build_refreshing(c, REFRESH)
    alice, bob, carol = c.nodes["alice"], c.nodes["bob"], c.nodes["carol"]
    serial0, end0 = cert_info(alice.state / "node.pem")
    bob0 = cert_info(bob.state / "node.pem")[0]

    # Time left and the renewal date are shown.
    txt = alice.read_text("certs/alice.txt")
    assert re.search(r"Not after:.*\((6 days 23|7 days 0) hours left\)", txt), txt
    assert re.search(r"Renews at:\s+\d{4}-\d\d-\d\d", txt), txt
    status = c.snoop.run("status", alice.mnt).stdout
    assert re.search(r"certificate:\s+serial %s, (6 days 23|7 days 0) hours left"
                     % serial0,
                     status, re.I), status
    assert "renews at:" in status, status

    # Well before two-thirds of the life nothing renews.
    assert cert_info(alice.state / "node.pem")[0] == serial0
    for node in (alice, bob, carol, c.ca):
        node.unmount()

    # Five days later (past 4 d 16 h): the CA and the nodes renew.
    travel(c.snoop, faketime, "+5d")
    c.ca.restart()
    alice.restart()
    bob.restart()

    def renewed():
        return cert_info(alice.state / "node.pem")[0] != serial0
    assert wait_until(renewed, RENEW_TIMEOUT, interval=0.5), alice.log_tail()
    serial1, end1 = cert_info(alice.state / "node.pem")
    # The new certificate is valid longer, for the same key, from our root.
    r = openssl("x509", "-noout", "-checkend", str(6 * 86400), "-in",
                str(alice.state / "node.pem"))
    # checkend uses the real clock: the new one lasts > 6 days from now.
    assert r.returncode == 0, (end0, end1)
    # openssl runs on the real clock: check at the faked time.
    r = openssl("verify", "-attime", str(int(time.time()) + 5 * 86400 + 60),
                "-CAfile", str(c.ca.state / "root.pem"),
                str(alice.state / "node.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    pub = [openssl("x509", "-noout", "-pubkey", "-in", str(p)).stdout
           for p in (alice.state / "node.pem",)]
    key_pub = openssl("pkey", "-pubout", "-in", str(alice.state / "node.key")).stdout
    assert pub[0] == key_pub
    assert "renewed" in alice.log.read_text(errors="replace")
    # The CA keeps its registry in step: alice's certs/alice.pem is the new one.
    assert wait_until(lambda: serial1 in openssl(
        "x509", "-noout", "-serial", input=c.ca.read_text("certs/alice.pem")
    ).stdout.upper(), RENEW_TIMEOUT, interval=0.5)
    status = c.snoop.run("status", alice.mnt).stdout
    assert serial1 in status.upper(), status

    # bob renewed too, and they still deliver, both ways.
    assert wait_until(lambda: cert_info(bob.state / "node.pem")[0] != bob0,
                      RENEW_TIMEOUT, interval=0.5), bob.log_tail()
    alice.write_bytes("outbox/bob/after-renew.txt", b"fresh certificate\n")
    assert wait_until(lambda: bob.exists("inbox/alice/after-renew.txt"), 60,
                      interval=0.5), alice.getxattr("outbox/bob/after-renew.txt")
    bob.write_bytes("outbox/alice/back.txt", b"and back\n")
    assert wait_until(lambda: alice.exists("inbox/bob/back.txt"), 60,
                      interval=0.5), bob.getxattr("outbox/alice/back.txt")

    # carol slept through all this: eight days on her certificate expired,
    # and mount says how to come back.
    travel(c.snoop, faketime, "+8d")
    r = carol.mount(expect_rc=2)
    assert "expired" in r.stderr, r.stderr
    assert "join token" in r.stderr and "--join" in r.stderr, r.stderr
    assert "snoopfs token CASTATE carol" in r.stderr, r.stderr
    assert not carol.is_mounted()
    travel(c.snoop, faketime, None)


def test_running_node_reports_expiry(cluster, faketime, tmp_path):
    """A daemon whose certificate expires while it runs says so in status."""
    c = cluster
    c.init_ca("ca", extra=("--open-enrollment",))
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    # The clock file is read again on every call, so time jumps while the
    # daemon runs.
    preload_faketime(c.snoop.env, faketime)
    c.snoop.env.update(FAKETIME_TIMESTAMP_FILE=str(clock), FAKETIME_NO_CACHE="1")
    try:
        dave = c.add_node("dave", extra=("--refresh", str(REFRESH)))
    finally:
        preload_faketime(c.snoop.env, None)
        for var in ("FAKETIME_TIMESTAMP_FILE", "FAKETIME_NO_CACHE"):
            c.snoop.env.pop(var, None)
    clock.write_text("+8d\n")

    def reports_expiry():
        status = c.snoop.run("status", dave.mnt).stdout
        return re.search(r"last error:\s+the certificate of dave expired at .*"
                         r"join token.*--join TOKEN", status)
    assert wait_until(reports_expiry, RENEW_TIMEOUT, interval=0.5), (
        c.snoop.run("status", dave.mnt).stdout, dave.log_tail())
    assert "expired" in c.snoop.run("status", dave.mnt).stdout
    assert "the certificate of dave expired" in dave.log.read_text(errors="replace")


def test_stale_crl_is_reported(cluster, faketime):
    """A node that cannot reach the CA keeps using the CRL it has, and says
    so once that list is past its nextUpdate (a day after the CA signed
    it): a warning in status and one line in the log. When the CA is back
    and a fresh list came, both go."""
    c = cluster
    build_refreshing(c, REFRESH, names=("alice",))
    alice = c.nodes["alice"]
    assert wait_until(lambda: (alice.state / "certs/crl.pem").exists(),
                      RENEW_TIMEOUT, interval=0.2), alice.log_tail()
    assert "warning:" not in c.snoop.run("status", alice.mnt).stdout
    alice.unmount()
    c.ca.unmount()
    # Two days on, with the CA down.
    travel(c.snoop, faketime, "+2d")
    try:
        alice.restart()

        def warned():
            st = c.snoop.run("status", alice.mnt).stdout
            return re.search(r"^warning:\s+the CRL is past its nextUpdate "
                             r"\(expired 1 days", st, re.M)
        assert wait_until(warned, RENEW_TIMEOUT, interval=0.5), (
            c.snoop.run("status", alice.mnt).stdout)
        assert wait_until(lambda: "the CRL is past its nextUpdate" in
                          alice.log.read_text(errors="replace"),
                          RENEW_TIMEOUT, interval=0.5), alice.log_tail()
        c.ca.restart()
        assert wait_until(lambda: "warning:" not in c.snoop.run(
            "status", alice.mnt).stdout, RENEW_TIMEOUT, interval=0.5), (
            c.snoop.run("status", alice.mnt).stdout)
        assert wait_until(lambda: "the CRL is current again" in
                          alice.log.read_text(errors="replace"), 5,
                          interval=0.2), alice.log_tail()
        log = alice.log.read_text(errors="replace")
        assert log.count("the CRL is past its nextUpdate") == 1, log
    finally:
        for node in (alice, c.ca):
            if node.is_mounted():
                node.unmount()
        travel(c.snoop, faketime, None)
