"""The PKI seen from outside: a CA and three nodes on 127.0.0.1 enroll, learn
about each other, and publish certificates that openssl and GnuTLS accept.

The first group of tests shares one cluster (module scope), read-only. Tests
that unmount, kill or signal daemons build their own small cluster.
"""

import os
import signal
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

import snoopwire
from snoopnodes import (CMD_TIMEOUT, EXIT_TIMEOUT, PEER_TIMEOUT, Node,
                        build_refreshing, dead_addr, file_mode, free_port,
                        fusermount_u, genkey, is_mounted, module_cluster,
                        openssl, pid_alive, sanitizer_hits, serial_int,
                        strip_time_left, summary_fields, wait_until)

NAMES = ["ca", "alice", "bob", "carol"]


def build_four(c):
    c.init_ca("ca")
    c.add_node("alice")
    c.add_node("bob")
    # carol makes her own key: the path a real operator takes.
    c.add_node("carol", pregen_key=False)
    c.wait_all_know_all(PEER_TIMEOUT)


@pytest.fixture(scope="module")
def four(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "pki4", build_four)


@pytest.fixture(params=NAMES)
def node(request, four):
    return four.nodes[request.param]


def run(args, timeout=CMD_TIMEOUT):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


# --- the tree ---------------------------------------------------------------------

def test_every_node_lists_everyone(four, node):
    entries = set(node.listdir("certs"))
    want = {"root.pem"} | {"%s.pem" % n for n in NAMES} | {"%s.txt" % n for n in NAMES}
    assert want <= entries, sorted(entries)
    assert {"certs", "inbox", "outbox"} <= set(node.listdir())
    assert node.listdir("inbox") == []


def test_certs_are_readable_by_openssl(four, node):
    for name in NAMES:
        r = openssl("x509", "-noout", "-text", "-in", str(node.certs / ("%s.pem" % name)))
        assert r.returncode == 0, (name, r.stderr)
        assert "CN = %s" % name in r.stdout or "CN=%s" % name in r.stdout


def test_openssl_verify_strict(four, node):
    root = str(node.certs / "root.pem")
    r = openssl("verify", "-x509_strict", "-CAfile", root, root)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in NAMES:
        pem = str(node.certs / ("%s.pem" % name))
        for purpose in ("sslclient", "sslserver"):
            r = openssl("verify", "-x509_strict", "-purpose", purpose, "-CAfile", root, pem)
            assert r.returncode == 0, (name, purpose, r.stdout, r.stderr)
            assert r.stdout.strip().endswith("OK"), r.stdout


def test_certtool_verify(four, node):
    root = str(node.certs / "root.pem")
    for name in NAMES:
        r = run(["certtool", "--verify", "--load-ca-certificate", root,
                 "--infile", str(node.certs / ("%s.pem" % name))])
        assert r.returncode == 0, (name, r.stdout, r.stderr)


def test_same_certificates_everywhere(four):
    ref = four.nodes["ca"]
    for name in NAMES + ["root"]:
        want = ref.cert(name)
        for n in four.nodes.values():
            assert n.cert(name) == want, (n.name, name)


# --- certificate contents ---------------------------------------------------------

def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


def test_root_extensions(four):
    root = four.ca.root()
    assert root.version == x509.Version.v3
    assert root.issuer == root.subject
    assert snoopwire.issued_by(root, root)
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True
    ku = ext(root, x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert ext(root, x509.SubjectKeyIdentifier).value.digest
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)


@pytest.mark.parametrize("name", NAMES)
def test_node_extensions(four, name):
    root = four.ca.root()
    cert = four.ca.cert(name)
    assert cert.version == x509.Version.v3
    assert snoopwire.cert_cn(cert) == name
    assert cert.issuer == root.subject
    assert snoopwire.issued_by(cert, root)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)

    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    assert not ku.key_cert_sign and not ku.crl_sign
    eku = ext(cert, x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    ski = ext(cert, x509.SubjectKeyIdentifier).value.digest
    assert ski
    aki = ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ext(root, x509.SubjectKeyIdentifier).value.digest
    san = ext(cert, x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["snoop://%s" % four.nodes[name].addr], uris
    assert cert.public_key().key_size == 2048
    assert cert.not_valid_before <= cert.not_valid_after


def test_serials(four):
    certs = [four.ca.root()] + [four.ca.cert(n) for n in NAMES]
    serials = [c.serial_number for c in certs]
    for s in serials:
        assert 0 < s < 2 ** 159, "serial must be positive and at most 20 octets"
    assert len(set(serials)) == len(serials), serials


def test_each_node_holds_its_own_key(four, node):
    assert file_mode(node.state) & 0o077 == 0, oct(file_mode(node.state))
    keys = [p for p in node.state.iterdir() if p.name.endswith(".key")]
    assert keys, "no key in STATE"
    for k in keys:
        assert file_mode(k) == 0o600, (k, oct(file_mode(k)))
    key = snoopwire.key_from_pem((node.state / "node.key").read_bytes())
    assert snoopwire.spki(key) == snoopwire.spki(node.cert(node.name))


def test_keys_are_distinct(four):
    spkis = {snoopwire.spki(four.ca.cert(n)) for n in NAMES}
    spkis.add(snoopwire.spki(four.ca.root()))
    assert len(spkis) == len(NAMES) + 1


def test_fingerprint_everywhere(four, node):
    fp = four.fingerprint
    root = node.root()
    assert snoopwire.fingerprint(root) == fp
    assert snoopwire.fingerprint(snoopwire.load_cert(
        (four.ca.state / "root.pem").read_bytes())) == fp
    r = four.snoop.run("inspect", node.certs / "root.pem")
    assert r.returncode == 0, r.stderr
    assert summary_fields(r.stdout)["SHA-256"] == fp


def test_txt_equals_inspect(four, node):
    for name in NAMES:
        txt = node.read_text("certs/%s.txt" % name)
        r = four.snoop.run("inspect", node.certs / ("%s.pem" % name))
        assert r.returncode == 0, r.stderr
        assert strip_time_left(txt) == strip_time_left(r.stdout), name
        f = summary_fields(txt)
        cert = node.cert(name)
        assert "CN=%s" % name in f["Subject"]
        assert serial_int(f["Serial"]) == cert.serial_number
        assert f["SHA-256"] == snoopwire.fingerprint(cert)
        assert f["Address"] == "snoop://%s" % four.nodes[name].addr
        assert f["CA"] == "no"
        assert f["Key"].startswith("RSA 2048 bits")
        assert "left" in f["Not after"]


def test_status(four, node):
    r = four.snoop.run("status", node.mnt)
    assert r.returncode == 0, r.stderr
    assert node.name in r.stdout
    assert node.addr in r.stdout or str(node.port) in r.stdout
    for other in NAMES:
        assert other in r.stdout, "status does not list peer %s:\n%s" % (other, r.stdout)


def test_ca_keeps_root_key_to_itself(four):
    for n in four.nodes.values():
        if n is not four.ca:
            assert not (n.state / "root.key").exists()


# --- lifecycle: each test has its own cluster -------------------------------------

def test_remount_keeps_certificate_and_cache(cluster):
    cluster.init_ca("ca")
    alice = cluster.add_node("alice")
    cluster.add_node("bob")
    cluster.wait_all_know_all()
    serial = alice.cert("alice").serial_number
    mtime_key = os.stat(alice.state / "node.key").st_mtime_ns

    # With the CA gone, a remount can only work from STATE.
    cluster.ca.unmount()
    alice.unmount()
    alice.mount()
    assert alice.cert("alice").serial_number == serial
    assert os.stat(alice.state / "node.key").st_mtime_ns == mtime_key
    assert {"ca", "alice", "bob"} <= alice.cert_names()
    assert alice.exists("certs/root.pem")
    r = cluster.snoop.run("status", alice.mnt)
    assert r.returncode == 0, r.stderr

    # The CA comes back, knowing every node from its registry at once (it
    # keeps no cache files); nothing makes alice enroll again.
    cluster.ca.mount()
    assert {"ca", "alice", "bob"} <= cluster.ca.cert_names()
    assert {p.name for p in (cluster.ca.state / "certs").iterdir()} <= {"crl.pem"}
    alice.unmount()
    alice.mount()
    assert alice.cert("alice").serial_number == serial
    assert cluster.ca.cert("alice").serial_number == serial


def test_refresh_brings_a_node_that_did_not_announce_itself(cluster):
    """A node that enrolled but never posted its certificate to the others
    reaches them with their next refresh, which asks the CA only for what
    it issued since the refresh before (and the CA keeps up without
    re-reading its registry)."""
    build_refreshing(cluster, 1, names=("alice",))
    alice = cluster.nodes["alice"]
    # A few refreshes run first, so that the one that must bring the
    # newcomer is an incremental one.
    time.sleep(3)
    res = snoopwire.enroll(cluster.ca.addr, "quiet", snoopwire.new_key(),
                           dead_addr())
    assert res.ok, res.reply
    assert wait_until(lambda: "quiet" in alice.cert_names(), 15), (
        sorted(alice.cert_names()))
    assert wait_until(lambda: "quiet" in cluster.ca.cert_names(), 5)


def test_stale_mount_is_detected(cluster):
    cluster.init_ca("ca")
    alice = cluster.add_node("alice")
    pid = alice.signal(signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), EXIT_TIMEOUT)
    assert alice.is_mounted(), "kill -9 should leave the FUSE mount behind"

    r = alice.mount(expect_rc=2)
    # libfuse may add its own line; snoopfs's line must tell the way out.
    assert "fusermount3 -u" in r.stderr, r.stderr

    assert fusermount_u(alice.mnt, lazy=True).returncode == 0
    assert wait_until(lambda: not alice.is_mounted(), 5)
    # After the operator cleans up, the node comes back as before.
    alice.mount()
    assert "alice" in alice.cert_names()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_unmounts(cluster, sig):
    cluster.init_ca("ca")
    alice = cluster.add_node("alice")
    pid = alice.signal(sig)
    assert wait_until(lambda: not alice.is_mounted(), 10), (
        "mount still present 10 s after %s" % sig.name)
    assert wait_until(lambda: not pid_alive(pid), EXIT_TIMEOUT), "daemon still runs"
    # And a clean exit leaves nothing stale: the next mount just works.
    alice.mount()
    pid = cluster.ca.signal(sig)
    assert wait_until(lambda: not cluster.ca.is_mounted(), 10)
    assert wait_until(lambda: not pid_alive(pid), EXIT_TIMEOUT)


def test_foreground_mount(cluster):
    ca = cluster.init_ca("ca", mount=False)
    p = cluster.snoop.popen("mount", ca.mnt, "--state", ca.state, "-f")
    try:
        assert wait_until(ca.is_mounted, 30), "foreground mount never mounted"
        assert wait_until(lambda: ca.exists("certs/root.pem"), 10)
        assert p.poll() is None, "-f must stay in the foreground"
        ca.pids.add(p.pid)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=EXIT_TIMEOUT)
        assert not sanitizer_hits(out + err), err
        assert p.returncode == 0, err
        assert not is_mounted(ca.mnt)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=EXIT_TIMEOUT)


def test_node_mount_refuses_wrong_fingerprint(cluster):
    cluster.init_ca("ca")
    eve = Node(cluster.snoop, "eve", cluster.base, free_port())
    cluster.nodes["eve"] = eve
    eve.state.mkdir(mode=0o700)
    genkey(eve.state / "node.key")
    r = eve.mount("--name", "eve", "--listen", eve.addr, "--ca", cluster.ca.addr,
                  "--ca-fingerprint", "sha256:" + "0" * 64, expect_rc=2)
    assert r.stderr.strip() and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not eve.is_mounted()
