"""Revocation: `snoopfs revoke`, the signed CRL and refusing revoked peers.

One cluster per test: the CA, alice, bob and carol, all refreshing every
REFRESH seconds (mount --refresh), so that a revocation reaches every node
within a few seconds. bob is the node that gets revoked.
"""

import errno
import re
import shutil

import pytest

import snoopwire
from snoopnodes import (Node, build_refreshing, cert_info, free_port, openssl,
                        wait_until)

REFRESH = 2
# The CRL reaches every node within one refresh; allow for slow machines.
CRL_TIMEOUT = 6 * REFRESH + 10


def serial_of(node):
    """The serial of NODE's own certificate (STATE/node.pem), hex."""
    return cert_info(node.state / "node.pem")[0]


def failed_revoked(node, rel):
    """Whether NODE's outbox file REL failed for a revocation (its state)."""
    try:
        return re.search(r"failed: .*revoked", node.getxattr(rel))
    except OSError:
        return False


def revoke(c, name):
    r = c.snoop.run("revoke", c.ca.state, name)
    assert r.returncode == 0, "revoke %s: %s%s" % (name, r.stdout, r.stderr)
    return r


def wait_crl_lists(node, name, timeout=CRL_TIMEOUT):
    """Waits until NODE no longer lists NAME in certs/ and has a CRL."""
    ok = wait_until(lambda: node.exists("certs/crl.pem")
                    and name not in node.cert_names(), timeout, interval=0.3)
    assert ok, "%s still lists %s or has no certs/crl.pem after %d s: %s\n%s" % (
        node.name, name, timeout, sorted(node.cert_names()), node.log_tail())


def test_revoke_unknown_name_fails(cluster):
    build_refreshing(cluster, REFRESH)
    r = cluster.snoop.run("revoke", cluster.ca.state, "nobody")
    assert r.returncode == 2, r
    assert "never issued" in r.stderr, r.stderr
    r = cluster.snoop.run("revoke", cluster.ca.state, "Not/A/Name")
    assert r.returncode == 1, r
    # A node's STATE is not a CA.
    r = cluster.snoop.run("revoke", cluster.nodes["alice"].state, "bob")
    assert r.returncode != 0 and "not a CA" in r.stderr, r


def test_revoked_peer_is_refused_both_ways(cluster, tmp_path):
    build_refreshing(cluster, REFRESH)
    c = cluster
    alice, bob, carol = c.nodes["alice"], c.nodes["bob"], c.nodes["carol"]
    bob_serial = serial_of(bob)
    alice_serial = serial_of(alice)

    # Before: alice can send to bob.
    alice.write_bytes("outbox/bob/before.txt", b"hello bob\n")
    assert wait_until(lambda: bob.exists("inbox/alice/before.txt"), 30), (
        alice.getxattr("outbox/bob/before.txt"))

    # A file queued for bob while bob is away fails once bob is revoked.
    bob.unmount()
    alice.write_bytes("outbox/bob/pending.txt", b"never delivered\n")

    r = revoke(c, "bob")
    assert "revoked" in r.stdout and bob_serial in r.stdout, r.stdout
    assert (c.ca.state / "crl.pem").exists()
    # Revoking again is not an error, and says so.
    r = revoke(c, "bob")
    assert "already revoked" in r.stdout, r.stdout

    for node in (c.ca, alice, carol):
        wait_crl_lists(node, "bob")

    # alice: the queued job fails with a reason that names the revocation,
    # in the file's state, in status, and in the log.
    assert wait_until(lambda: failed_revoked(alice, "outbox/bob/pending.txt"),
                      90, interval=0.5), (
        alice.getxattr("outbox/bob/pending.txt"), alice.log_tail())
    status = c.snoop.run("status", alice.mnt).stdout
    assert "revoked" in status, status
    assert re.search(r"crl:\s+number \d+, 1 revoked", status), status
    assert "revoked" in alice.log.read_text(errors="replace")

    # A new file for bob is refused at once: "Key has been revoked".
    with pytest.raises(OSError) as e:
        alice.write_bytes("outbox/bob/after.txt", b"no\n")
    assert e.value.errno == errno.EKEYREVOKED, e.value

    # bob comes back: alice refuses what bob sends.
    bob.restart()
    bob.write_bytes("outbox/alice/from-bob.txt", b"let me in\n")
    assert wait_until(lambda: failed_revoked(bob, "outbox/alice/from-bob.txt"),
                      90, interval=0.5), (
        bob.getxattr("outbox/alice/from-bob.txt"), alice.log_tail())
    assert not alice.exists("inbox/bob/from-bob.txt")
    assert re.search(r"refused .* from 'bob'.*revoked",
                     alice.log.read_text(errors="replace")), alice.log_tail()

    # The CRL on every node verifies against the root, and openssl agrees
    # with snoopfs about who is revoked.
    crl_pem = alice.read_bytes("certs/crl.pem")
    for node in (c.ca, carol):
        assert node.read_bytes("certs/crl.pem") == crl_pem or \
            b"BEGIN X509 CRL" in node.read_bytes("certs/crl.pem")
    (tmp_path / "crl.pem").write_bytes(crl_pem)
    (tmp_path / "root.pem").write_bytes(alice.read_bytes("certs/root.pem"))
    (tmp_path / "bob.pem").write_bytes((bob.state / "node.pem").read_bytes())
    (tmp_path / "alice.pem").write_bytes(alice.read_bytes("certs/alice.pem"))
    r = openssl("crl", "-in", str(tmp_path / "crl.pem"), "-CAfile",
                str(tmp_path / "root.pem"), "-noout")
    assert r.returncode == 0 and "verify OK" in r.stdout + r.stderr, r
    r = openssl("crl", "-in", str(tmp_path / "crl.pem"), "-noout", "-text")
    assert bob_serial in r.stdout.replace(":", "").upper(), r.stdout
    assert alice_serial not in r.stdout.replace(":", "").upper()
    assert "CRL Number" in r.stdout and "Authority Key Identifier" in r.stdout
    r = openssl("verify", "-crl_check", "-CRLfile", str(tmp_path / "crl.pem"),
                "-CAfile", str(tmp_path / "root.pem"),
                str(tmp_path / "bob.pem"))
    assert r.returncode != 0 and "certificate revoked" in r.stdout + r.stderr, r
    r = openssl("verify", "-crl_check", "-CRLfile", str(tmp_path / "crl.pem"),
                "-CAfile", str(tmp_path / "root.pem"),
                str(tmp_path / "alice.pem"))
    assert r.returncode == 0 and "OK" in r.stdout, r
    # snoopfs inspect reads it too.
    r = c.snoop.run("inspect", tmp_path / "crl.pem")
    assert r.returncode == 0, r.stderr
    assert "CRL number:" in r.stdout and bob_serial in r.stdout, r.stdout
    # The copy the CA keeps for operators is a CRL of the same root.
    r = openssl("crl", "-in", str(c.ca.state / "crl.pem"), "-CAfile",
                str(tmp_path / "root.pem"), "-noout")
    assert r.returncode == 0, r
    # certs/crl.pem is read-only like the rest of certs/.
    with pytest.raises(OSError):
        alice.write_bytes("certs/crl.pem", b"x")

    # A revoked node cannot renew: the CA refuses its renew request.
    key = snoopwire.key_from_pem((bob.state / "node.key").read_bytes())
    cert = snoopwire.load_cert((bob.state / "node.pem").read_bytes())
    root = snoopwire.load_cert(alice.read_bytes("certs/root.pem"))
    snoopwire.remember("bob", key, cert, root)
    csr_pem = snoopwire.make_csr(key, "bob")
    req = snoopwire.build("renew", "", "bob", payload=csr_pem, key=key)
    reply = snoopwire.exchange(c.ca.addr, req)
    # Either TLS refuses bob outright, or the CA answers with the reason.
    if reply is not None:
        assert reply.status == "error", reply
        assert "revoked" in str(reply), reply
    assert "renewed" not in c.ca.log.read_text(errors="replace")


def cache_files(node):
    """{file name: (inode, mtime_ns)} of NODE's STATE/certs/*.pem."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (node.state / "certs").glob("*.pem")}


def last_sync(c, node):
    m = re.search(r"^last sync: +(.+)$", c.snoop.run("status", node.mnt).stdout, re.M)
    return m and m.group(1)


def test_refresh_leaves_held_certificates_alone(cluster):
    """Every refresh puts every known certificate again. One a node already
    holds must not be verified and rewritten each time: with thousands of
    nodes that was two fsyncs and a new inode per node per refresh."""
    build_refreshing(cluster, REFRESH)
    c = cluster
    # The CA keeps no cache files (its registry holds the certificates).
    assert set(cache_files(c.ca)) <= {"crl.pem"}, cache_files(c.ca)
    watched = [c.nodes["alice"]]
    before = {n.name: cache_files(n) for n in watched}
    for n in watched:
        assert {"alice.pem", "bob.pem", "carol.pem"} <= set(before[n.name]), before
    syncs = {n.name: [last_sync(c, n)] for n in watched}

    def two_more_syncs():
        for n in watched:
            s = last_sync(c, n)
            if s != syncs[n.name][-1]:
                syncs[n.name].append(s)
        return all(len(v) >= 3 for v in syncs.values())
    # status shows seconds, so two changes of "last sync" are two refreshes.
    assert wait_until(two_more_syncs, 8 * REFRESH + 10, interval=0.2), syncs
    for n in watched:
        assert cache_files(n) == before[n.name], (
            "%s rewrote its certificate cache on refresh" % n.name)


def test_crl_survives_restart_and_lists_nobody_else(cluster):
    build_refreshing(cluster, REFRESH)
    c = cluster
    alice, carol = c.nodes["alice"], c.nodes["carol"]
    revoke(c, "carol")
    wait_crl_lists(alice, "carol")
    # carol's key can never be certified again, under any name, even where
    # enrollment is open.
    thief = Node(c.snoop, "mallory", c.base, free_port())
    c.nodes["mallory"] = thief
    thief.state.mkdir(mode=0o700)
    shutil.copy(str(c.nodes["carol"].state / "node.key"),
                str(thief.state / "node.key"))
    r = thief.mount("--name", "mallory", "--listen", thief.addr, "--ca",
                    c.ca.addr, "--ca-fingerprint", c.fingerprint,
                    expect_rc=2)
    assert "revoked" in r.stderr, r.stderr
    alice.unmount()
    carol.unmount()
    # The CA is down: alice still refuses carol from her saved CRL.
    c.ca.unmount()
    alice.restart()
    assert alice.exists("certs/crl.pem")
    assert "carol" not in alice.cert_names()
    assert {"ca", "alice", "bob"} <= alice.cert_names()
