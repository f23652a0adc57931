"""Join tokens: how a node comes to trust a CA, and the CA the node.

A node trusts a CA only through a pinned root fingerprint, given with
--ca-fingerprint or carried by a one-time join token from `snoopfs token`
(`mount --join TOKEN`). A CA requires a valid token for every enrollment
unless it was made with `ca-init --open-enrollment`. Wrong, reused, expired
and other-name tokens are refused, each with a message that says which.
"""

import base64
import copy
import glob
import hashlib
import os
import re
import shlex
import sqlite3
import threading
import time

import pytest

import snoopwire as w
from snoopnodes import (TOKEN_RE, Node, dead_addr, free_port, genkey,
                        module_cluster, pid_cmdline, preload_faketime,
                        wait_until)

_counter = [0]


def fresh_name(prefix="tk"):
    _counter[0] += 1
    return "%s-%d-%d" % (prefix, os.getpid() % 1000, _counter[0])


def build(c):
    c.init_ca("ca")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    """A CA made the default way: tokens required."""
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "tokens", build)


def new_node(c, name=None, pregen_key=True):
    """A node of cluster C that is not enrolled yet (torn down with C)."""
    name = name or fresh_name()
    node = Node(c.snoop, name, c.base, free_port())
    c.nodes[name] = node
    if pregen_key:
        node.state.mkdir(mode=0o700)
        genkey(node.state / "node.key")
    return node


def first_mount(node, ca, *extra, expect_rc=0):
    return node.mount("--name", node.name, "--listen", node.addr,
                      "--ca", ca.addr, *extra, expect_rc=expect_rc)


def one_line(r):
    """The error of a refused command: one non-empty line on stderr."""
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) >= 1, "no error message on stderr"
    return lines[-1]


def token_bytes(tok):
    raw = tok[len("snp1."):]
    return bytearray(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def token_text(raw):
    return "snp1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def not_enrolled(node):
    return not (node.state / "node.pem").exists() and not node.is_mounted()


# --- the node side: no pin, no enrollment -------------------------------------

def test_no_token_no_pin_refused_by_node(net):
    node = new_node(net)
    before = net.ca.log.read_text(errors="replace").count("get/csr")
    r = first_mount(node, net.ca, expect_rc=1)
    msg = one_line(r)
    assert "--join" in msg and "snoopfs token" in msg, msg
    assert "--ca-fingerprint" in msg, msg
    assert not_enrolled(node)
    # Refused before talking to anyone: the CA saw no request.
    time.sleep(0.5)
    assert net.ca.log.read_text(errors="replace").count("get/csr") == before


def test_token_works_once(net):
    name = fresh_name()
    tok = net.token(name)
    assert TOKEN_RE.match(tok)
    node = new_node(net, name)
    first_mount(node, net.ca, "--join", tok)
    assert node.cert(name).serial_number
    assert w.fingerprint(node.root()) == net.fingerprint
    # The daemon does not show the token to other users in `ps`.
    pid = node.read_pid()
    assert pid and "--join" in pid_cmdline(pid)
    assert not any(tok in a for a in pid_cmdline(pid)), pid_cmdline(pid)
    # The same token again, from a fresh STATE of the same name: refused.
    again = new_node(net, name + "-b")
    again.name = name  # same --name, other STATE
    r = first_mount(again, net.ca, "--join", tok, expect_rc=2)
    msg = one_line(r)
    assert "already used" in msg, msg
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", msg), msg
    assert not_enrolled(again)


def test_token_for_another_name_refused(net):
    bob = fresh_name("bob")
    tok = net.token(bob)
    carol = new_node(net, fresh_name("carol"))
    r = first_mount(carol, net.ca, "--join", tok, expect_rc=2)
    msg = one_line(r)
    assert "issued for '%s'" % bob in msg and carol.name in msg, msg
    assert not_enrolled(carol)
    # A refusal does not spend the token: bob can still use it.
    node = new_node(net, bob)
    first_mount(node, net.ca, "--join", tok)


def test_expired_token_refused(net):
    name = fresh_name()
    tok = net.token(name, ttl="1s")
    time.sleep(2.2)
    node = new_node(net, name)
    r = first_mount(node, net.ca, "--join", tok, expect_rc=2)
    msg = one_line(r)
    assert "expired" in msg and "UTC" in msg, msg
    assert not_enrolled(node)


def test_wrong_secret_and_unknown_token_refused(net):
    name = fresh_name()
    tok = net.token(name)
    raw = token_bytes(tok)
    assert len(raw) == 72
    wrong = bytearray(raw)
    wrong[-1] ^= 1                       # the secret's last byte
    unknown = bytearray(raw)
    unknown[32] ^= 1                     # the token id
    node = new_node(net, name)
    for bad in (wrong, unknown):
        r = first_mount(node, net.ca, "--join", token_text(bad), expect_rc=2)
        msg = one_line(r)
        assert "unknown join token or wrong secret" in msg, msg
        assert not_enrolled(node)
    # Neither attempt spent the real token.
    first_mount(node, net.ca, "--join", tok)


def test_malformed_token_is_a_usage_error(net):
    node = new_node(net)
    tok = net.token(node.name)
    for bad in ("garbage", "snp1.", tok[:-1], tok + "A", tok.replace("snp1.", "snp2.")):
        r = first_mount(node, net.ca, "--join", bad, expect_rc=1)
        assert "not a join token" in one_line(r), r.stderr
    assert not_enrolled(node)


# --- pins ---------------------------------------------------------------------

def test_wrong_pinned_fingerprint_refuses_the_ca(fuse_available, cluster):
    # An open CA would enroll anyone: only the pin stands in the way.
    cluster.init_ca("ca", open_enrollment=True)
    node = new_node(cluster)
    r = first_mount(node, cluster.ca, "--ca-fingerprint", "sha256:" + "ab" * 32,
                    expect_rc=2)
    assert "pinned" in one_line(r), r.stderr
    assert not_enrolled(node)
    assert node.name not in cluster.ca.cert_names()
    # The right pin, in any case and with colons, works.
    fp = cluster.fingerprint[len("sha256:"):].upper()
    pin = "SHA256:" + ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))
    first_mount(node, cluster.ca, "--ca-fingerprint", pin)
    assert w.fingerprint(node.root()) == cluster.fingerprint


def test_join_with_tampered_fingerprint_refused(net):
    name = fresh_name()
    tok = net.token(name)
    raw = token_bytes(tok)
    raw[0] ^= 1                          # the CA root fingerprint
    node = new_node(net, name)
    r = first_mount(node, net.ca, "--join", token_text(raw), expect_rc=2)
    assert "pinned" in one_line(r), r.stderr
    assert not_enrolled(node)
    # The node gave up before sending the token: it is still good.
    first_mount(node, net.ca, "--join", tok)


def test_join_and_fingerprint_must_agree(net):
    node = new_node(net)
    tok = net.token(node.name)
    r = first_mount(node, net.ca, "--join", tok, "--ca-fingerprint",
                    "sha256:" + "00" * 32, expect_rc=1)
    assert "must agree" in one_line(r), r.stderr
    assert not_enrolled(node)
    # Agreeing (the pin in another spelling) is fine.
    first_mount(node, net.ca, "--join", tok, "--ca-fingerprint",
                net.fingerprint.upper())


# --- the CA side ----------------------------------------------------------------

def test_ca_refuses_get_csr_without_token(net):
    name = fresh_name()
    res = w.enroll(net.ca.addr, name, w.new_key(), dead_addr())
    assert res.reply is not None and res.reply.status == "error", res.reply
    assert "requires a join token" in res.reply.extra["error"]
    assert res.reply.verify_with(net.ca.cert(net.ca.name))
    # And a node that pins the CA but has no token hears the same.
    node = new_node(net)
    r = first_mount(node, net.ca, "--ca-fingerprint", net.fingerprint,
                    expect_rc=2)
    assert "requires a join token" in one_line(r), r.stderr
    assert not_enrolled(node)


def test_token_from_another_ca_refused(net, fuse_available, cluster):
    other = cluster.init_ca("other", mount=False)
    name = fresh_name()
    tok = cluster.token(name)
    res = w.enroll(net.ca.addr, name, w.new_key(), dead_addr(), token=tok)
    assert res.reply is not None and res.reply.status == "error", res.reply
    assert "another CA" in res.reply.extra["error"]
    assert other.fingerprint != net.fingerprint


def test_refused_request_does_not_spend_the_token(net):
    name = fresh_name()
    tok = net.token(name)
    key = w.new_key()
    # A CSR for another name than the sender's: refused before the token.
    res = w.enroll(net.ca.addr, name, key, dead_addr(), token=tok,
                   csr_pem=w.make_csr(key, name + "-x"))
    assert not res.ok
    res = w.enroll(net.ca.addr, name, key, dead_addr(), token=tok)
    assert res.ok, res.reply
    assert w.cert_cn(res.cert) == name


def test_concurrent_double_use_exactly_one_wins(net):
    """Eight requests with one token (same name, same key) at once."""
    name = fresh_name()
    tok = net.token(name)
    key = w.new_key()
    reqs = [w.csr_request(name, key, dead_addr(), token=tok) for _ in range(8)]
    barrier = threading.Barrier(len(reqs), timeout=30)
    replies = [None] * len(reqs)

    def go(i):
        barrier.wait()
        replies[i] = w.exchange(net.ca.addr, reqs[i], timeout=60,
                                as_node="anon")
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(r is not None for r in replies), replies
    ok = [r for r in replies if r.status == "ok"]
    refused = [r for r in replies if r.status == "error"]
    assert len(ok) == 1, replies
    assert len(refused) == 7
    for r in refused:
        assert "already used" in r.extra["error"], r.extra["error"]
    rows = sqlite3.connect(str(net.ca.state / "registry.db")).execute(
        "SELECT COUNT(*) FROM certs WHERE name = ?", (name,)).fetchone()
    assert rows[0] == 1


def test_token_is_stored_hashed(net):
    name = fresh_name()
    tok = net.token(name)
    raw = token_bytes(tok)
    secret, token_id = bytes(raw[40:]), bytes(raw[32:40])
    db = sqlite3.connect(str(net.ca.state / "registry.db"))
    row = db.execute("SELECT secret_sha256, name, expires_at - created_at,"
                     " used_at FROM tokens WHERE id = ?",
                     (token_id.hex(),)).fetchone()
    db.close()
    assert row is not None
    assert row[0] == "sha256:" + hashlib.sha256(secret).hexdigest()
    assert row[1] == name and row[2] == 3600 and row[3] is None
    # Neither the secret nor the token text is anywhere in the CA's STATE.
    needles = [secret, secret.hex().encode(), tok.encode(),
               tok[len("snp1."):].encode(),
               base64.b64encode(secret).rstrip(b"=")]
    for root, dirs, files in os.walk(str(net.ca.state)):
        for f in files:
            data = open(os.path.join(root, f), "rb").read()
            for n in needles:
                assert n not in data, "secret found in %s" % f


def test_printed_mount_line_works(net):
    name = fresh_name()
    r = net.snoop.run("token", net.ca.state, name, "--ttl", "10m")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    tok = lines[0]
    assert TOKEN_RE.match(tok), r.stdout
    assert "UTC" in r.stdout
    mount_lines = [l.strip() for l in lines if l.strip().startswith("snoopfs mount")]
    assert len(mount_lines) == 1, r.stdout
    argv = shlex.split(mount_lines[0])
    assert argv[argv.index("--join") + 1] == tok
    assert argv[argv.index("--ca") + 1] == net.ca.addr
    assert argv[argv.index("--name") + 1] == name
    node = new_node(net, name, pregen_key=False)
    fill = {"MOUNTPOINT": str(node.mnt), "STATE_DIR": str(node.state),
            "HOST:PORT": node.addr}
    assert set(fill) <= set(argv), argv
    args = [fill.get(a, a) for a in argv[1:]]
    r = net.snoop.run(*args, timeout=90)
    assert r.returncode == 0, r.stderr
    assert wait_until(node.is_mounted, 5)
    assert wait_until(lambda: node.exists("certs/root.pem"), 10)
    node.pids.add(wait_until(node.read_pid, 5))
    assert name in node.cert_names()


def test_token_command_errors(net, tmp_path):
    s = net.snoop
    r = s.run("token", net.ca.state, "bad/name")
    assert r.returncode == 1 and "NAME" in r.stderr
    for ttl in ("0", "31d", "5x", "-1", "1.5h"):
        r = s.run("token", net.ca.state, "x", "--ttl", ttl)
        assert r.returncode == 1 and "--ttl" in r.stderr, (ttl, r.stderr)
    r = s.run("token", tmp_path / "nothing", "x")
    assert r.returncode == 2 and "not a CA" in r.stderr, r.stderr
    r = s.run("token", net.ca.state)
    assert r.returncode == 1
    r = s.run("token", "--help")
    assert r.returncode == 0 and "--ttl" in r.stdout
    for ttl, secs in (("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800),
                      ("45", 45)):
        name = fresh_name()
        r = s.run("token", net.ca.state, name, "--ttl", ttl)
        assert r.returncode == 0, r.stderr
        raw = token_bytes(r.stdout.splitlines()[0])
        db = sqlite3.connect(str(net.ca.state / "registry.db"))
        got = db.execute("SELECT expires_at - created_at FROM tokens WHERE"
                         " id = ?", (bytes(raw[32:40]).hex(),)).fetchone()
        db.close()
        assert got == (secs,), (ttl, got)


# --- open enrollment ------------------------------------------------------------

def test_open_enrollment_ca_accepts_without_token(fuse_available, cluster):
    ca = cluster.init_ca("ca", open_enrollment=True)
    assert "enrollment=open" in (ca.state / "node.conf").read_text()
    res = w.enroll(ca.addr, fresh_name(), w.new_key(), dead_addr())
    assert res.ok, res.reply
    node = cluster.add_node("alice", token=False)   # --ca-fingerprint only
    assert "alice" in node.cert_names()
    assert wait_until(lambda: "open enrollment" in ca.log.read_text(), 5)
    # Tokens still work there, once.
    tok = cluster.token("bob")
    cluster.add_node("bob", token=tok)
    res = w.enroll(ca.addr, "bob", w.new_key(), dead_addr(), token=tok)
    assert res.reply.status == "error" and "already used" in res.reply.extra["error"]


def test_default_ca_config_requires_tokens(net):
    assert "enrollment=token" in (net.ca.state / "node.conf").read_text()


# --- re-join after expiry ---------------------------------------------------------

FAKETIME_LIB = next(iter(sorted(glob.glob(
    "/usr/lib/*/faketime/libfaketime.so.1"))), "/nonexistent")


def faked(snoop, offset):
    s = copy.copy(snoop)
    s.env = dict(snoop.env)
    preload_faketime(s.env, FAKETIME_LIB)
    s.env["FAKETIME"] = offset
    s.env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return s


@pytest.mark.skipif(not os.path.exists(FAKETIME_LIB), reason="libfaketime missing")
def test_rejoin_after_certificate_expired(fuse_available, cluster):
    ca = cluster.init_ca("ca", mount=False)
    # Node certificates of one day here, the CA's own one keeps its 7.
    conf = ca.state / "node.conf"
    conf.write_text(re.sub(r"node_days=\d+", "node_days=1", conf.read_text()))
    ca.mount()
    bob = cluster.add_node("bob")
    serial = bob.cert("bob").serial_number
    key = (bob.state / "node.key").read_bytes()
    bob.unmount()
    ca.unmount()

    # Two days later: bob's certificate has expired, the CA's has not.
    later = faked(cluster.snoop, "+2d")
    ca.snoop = bob.snoop = later
    ca.mount()
    r = bob.mount(expect_rc=None)
    assert r.returncode != 0, "an expired node mounted without re-joining"
    assert "--join" in r.stderr, r.stderr
    r = later.run("token", ca.state, "bob")    # on the CA's clock
    assert r.returncode == 0, r.stderr
    tok = r.stdout.splitlines()[0]
    bob.mount("--join", tok)
    assert bob.cert("bob").serial_number != serial
    assert (bob.state / "node.key").read_bytes() == key
    # Used up: the same token cannot re-join anyone again.
    res = w.enroll(ca.addr, "bob", w.new_key(), dead_addr(), token=tok)
    assert res.reply is not None and res.reply.status == "error"
