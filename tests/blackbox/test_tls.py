"""The TLS 1.3 transport: who may connect, who they must be, and what a
capture of the wire shows.

Every node connection is mutual TLS 1.3 with the PKI's own certificates:
a node presents its certificate and checks that the server's verifies
against the root and names the node it meant to reach; a client without a
certificate may only enroll. These tests speak TLS themselves (snoopwire)
and watch a real cluster's loopback traffic with tcpdump.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import snoopwire as w
from snoopnodes import (DELIVERY_TIMEOUT, dead_addr, free_port, module_cluster,
                        wait_until)

# src/wire/transport.h
HANDSHAKE_SECONDS = 10
PEER_MAX = 32

_counter = [0]


def fresh_name(prefix="t"):
    _counter[0] += 1
    return "%s-%d" % (prefix, _counter[0])


def build(c):
    # Open enrollment: the raw clients here enroll without join tokens.
    c.init_ca("ca", open_enrollment=True)
    c.add_node("alice", token=False)
    c.add_node("bob", token=False)
    c.wait_all_know_all()


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "tls", build)


def enroll(net, name=None, address=None):
    """A wire-only node enrolled over anonymous TLS; returns its Identity."""
    name = name or fresh_name()
    key = w.new_key()
    res = w.enroll(net.ca.addr, name, key, address or dead_addr())
    assert res.ok, "enrolling %s: %r" % (name, res.reply)
    assert w.fingerprint(res.root) == net.fingerprint
    return w.identity(name)


@pytest.fixture(scope="module")
def client(net):
    return enroll(net, "tls-client")


def get_crt(addr, ident, as_node=None, sign_key=None, node_id=None):
    """get/crt "" over TLS as AS_NODE (default IDENT); returns the reply."""
    req = w.build("get/crt", "", node_id or ident.name,
                  key=sign_key or ident.key)
    return w.exchange(addr, req, as_node=as_node or ident)


def assert_serves(net, client):
    """The CA still answers a well-behaved client."""
    reply = get_crt(net.ca.addr, client)
    assert reply is not None and reply.status == "ok", reply


def assert_refused(reply, words):
    assert reply is not None, "dropped instead of a signed refusal"
    assert reply.status == "error", reply
    assert words in reply.extra.get("error", ""), reply


def log_has(node, words, timeout=5):
    return wait_until(lambda: words in node.log.read_text(errors="replace"),
                      timeout)


# --- who may connect ----------------------------------------------------------

def test_enrolled_client_is_served(net, client):
    s = w.connect(net.ca.addr, as_node=client, expect="ca")
    with s:
        assert s.version() == "TLSv1.3"
        # The server's chain ends at the root the fingerprint pins.
        assert w.peer_cn(s) == "ca"
    assert_serves(net, client)


def test_foreign_ca_certificate_refused_by_tls(net, client):
    """A client certificate from another CA, even under a real name."""
    root = net.ca.root()
    for name in ("mallory", client.name):
        foreign = w.make_identity(name)
        # The client trusts the real root, so only the server can refuse.
        ctx = w.client_context(foreign, root=root)
        try:
            with w.connect(net.ca.addr, ctx=ctx) as s:
                # TLS 1.3: the server judges the client's certificate after
                # the client finished; the refusal arrives as an alert.
                req = w.build("get/crt", "", name, key=foreign.key)
                w.send_frame(s, req.body)
                body = w.recv_frame(s)
                pytest.fail("a foreign certificate was served: %r" % body[:200])
        except (w.Dropped, BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
    assert log_has(net.ca, "failed: unable to get local issuer certificate")
    assert_serves(net, client)


def test_foreign_key_refused_by_message_verification(net, client):
    """Over a valid TLS connection, a message signed by another key."""
    forger = w.new_key()
    assert_refused(get_crt(net.ca.addr, client, sign_key=forger),
                   "signature does not verify")
    # And a certificate from another CA, posted as a message, is refused too.
    foreign = w.make_identity(client.name, key=client.key)
    pem = w.cert_pem(foreign.cert).decode()
    req = w.build("post/crt", "", client.name, payload=pem, key=client.key)
    reply = w.exchange(net.nodes["alice"].addr, req, as_node=client)
    assert_refused(reply, "does not verify against the root")
    assert_serves(net, client)


def test_sender_must_match_tls_peer(net, client):
    other = enroll(net)
    reply = get_crt(net.ca.addr, other, as_node=client)
    assert_refused(reply, "sender %s does not match the TLS peer %s" % (
        other.name, client.name))
    assert_serves(net, client)


def test_tls12_refused(net, client):
    ctx = w.client_context(client, maximum=ssl.TLSVersion.TLSv1_2,
                           minimum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(w.TLSRefused):
        w.connect(net.ca.addr, ctx=ctx).close()
    assert_serves(net, client)


def test_plain_tcp_refused(net, client):
    """A plain-TCP client speaking the old wire gets no JSON back."""
    req = w.build("get/crt", "", client.name, key=client.key)
    with w.connect(net.ca.addr, plain=True, timeout=HANDSHAKE_SECONDS + 10) as s:
        w.send_frame(s, req.body)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert b"{" not in got and b"reply" not in got, got[:200]
    assert log_has(net.ca, "its first bytes are not our protocol (TLS)")
    assert_serves(net, client)


def test_anonymous_may_enroll_only(net, client):
    # Enrolling works without a certificate (enroll() is anonymous) ...
    fresh = enroll(net)
    # ... but nothing else does, even perfectly signed.
    reply = get_crt(net.ca.addr, fresh, as_node="anon")
    assert_refused(reply, "this request needs a client certificate")
    bob = net.nodes["bob"]
    certs = {"bob": bob.cert("bob")}
    out = w.send_file(bob.addr, fresh.name, fresh.key, "anon.bin", b"x" * 10,
                      ["bob"], certs, timeout=20, as_node="anon")
    assert not out.accepted, out
    assert out.reply is not None and out.reply.status == "error", out
    assert "needs a client certificate" in out.reply.extra["error"]
    assert not bob.exists("inbox/%s" % fresh.name)
    assert_serves(net, client)


def test_client_checks_server_name(net, client):
    """Python side: the CA's certificate does not pass for alice's."""
    with pytest.raises(w.TLSRefused):
        w.connect(net.ca.addr, as_node=client, expect="alice").close()


def fake_server(listener, ident, result):
    """Accepts one connection as IDENT and records any frame it receives."""
    listener.settimeout(60)
    try:
        conn, _ = listener.accept()
    except socket.timeout:
        result["accepted"] = False
        return
    result["accepted"] = True
    with conn:
        conn.settimeout(15)
        try:
            conn = w.server_wrap(conn, ident)
            result["frame"] = w.recv_frame(conn)
        except Exception as e:  # the expected outcome: the client gave up
            result["error"] = repr(e)


def test_node_refuses_impersonating_server(net, client):
    """alice sends to eve; the server at eve's address holds a real
    certificate, but mallory's: alice must refuse it before sending."""
    alice = net.nodes["alice"]
    listener = socket.create_server(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % listener.getsockname()[1]
    eve = enroll(net, fresh_name("eve"), address=addr)
    mallory = enroll(net, fresh_name("mallory"))
    # alice learns eve's certificate (and address) from the CA.
    assert wait_until(lambda: eve.name in alice.cert_names(), 45,
                      interval=0.5), "alice never learnt about eve"
    result = {}
    th = threading.Thread(target=fake_server, args=(listener, mallory, result),
                          daemon=True)
    th.start()
    try:
        alice.write_bytes("outbox/%s/for-eve.txt" % eve.name, b"secret\n")
        th.join(90)
        assert not th.is_alive(), "alice never connected"
        assert result.get("accepted"), result
        assert "frame" not in result, "alice sent to an impostor: %r" % (
            result["frame"][:200],)
        assert log_has(alice, "names another node", 20), alice.log_tail()
    finally:
        listener.close()
        try:
            os.unlink(alice.mnt / "outbox" / eve.name / "for-eve.txt")
        except OSError:
            pass


# --- limits -------------------------------------------------------------------

def test_handshake_timeout(net, client):
    """A peer that connects and says nothing is cut off."""
    t0 = time.monotonic()
    with w.connect(net.ca.addr, plain=True, timeout=HANDSHAKE_SECONDS + 20) as s:
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    took = time.monotonic() - t0
    assert HANDSHAKE_SECONDS - 1 <= took <= HANDSHAKE_SECONDS + 8, took
    assert log_has(net.ca, "no handshake within the time limit")
    assert_serves(net, client)


def test_per_peer_cap(net, client):
    hog = enroll(net)
    socks = []
    try:
        for _ in range(PEER_MAX):
            socks.append(w.connect(net.ca.addr, as_node=hog, expect="ca"))
        # One round trip on the last makes sure the server counted them all.
        w.send_frame(socks[-1], w.build("get/crt", "", hog.name,
                                        key=hog.key).body)
        assert w.parse(w.recv_frame(socks[-1])).status == "ok"
        reply = get_crt(net.ca.addr, hog)
        assert_refused(reply, "too many connections from %s" % hog.name)
        # Others are not affected.
        assert_serves(net, client)
    finally:
        for s in socks:
            s.close()
    # Once they are gone the peer is welcome again.
    assert wait_until(lambda: _ok(get_crt(net.ca.addr, hog)), 10)


def _ok(reply):
    return reply is not None and reply.status == "ok"


# --- what the wire shows ------------------------------------------------------

def start_capture(path, ports):
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.fail("tcpdump is missing (scripts/setup installs it)")
    expr = " or ".join("tcp port %d" % p for p in ports)
    # --immediate-mode: packets are written as they come, not when a
    # kernel buffer block fills or times out (which SIGINT would cut short).
    p = subprocess.Popen([tcpdump, "-i", "lo", "--immediate-mode", "-U",
                          "-s", "0", "-w", str(path), expr], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    # tcpdump says "listening on lo" once it captures.
    line = p.stderr.readline().decode(errors="replace")
    assert "listening" in line, line
    return p


def stop_capture(p):
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def test_capture_shows_nothing_in_clear(net, tmp_path):
    alice, bob = net.nodes["alice"], net.nodes["bob"]
    newcomer = "zq-newcomer-%d" % os.getpid()
    fname = "platypus-ledger-%d.txt" % os.getpid()
    port = free_port()
    pcap = tmp_path / "wire.pcap"
    cap = start_capture(pcap, [net.ca.port, alice.port, bob.port, port])
    try:
        # A plain-TCP canary proves that the capture sees payload bytes.
        with w.connect(net.ca.addr, plain=True) as s:
            s.sendall(b"CANARY-in-clear")
        # An enrollment (CSR subject = the newcomer's name) ...
        node = net.add_node(newcomer, token=False)
        assert node.is_mounted()
        # ... and a transfer of a file with a distinctive name.
        alice.write_bytes("outbox/bob/%s" % fname, b"ledger " * 1000)
        assert wait_until(lambda: bob.exists("inbox/alice/%s" % fname),
                          DELIVERY_TIMEOUT), alice.log_tail()
    finally:
        stop_capture(cap)
    data = pcap.read_bytes()
    assert b"CANARY-in-clear" in data, "the capture saw no payload"
    assert data.count(b"\x17\x03\x03") > 5, "no TLS application data seen"
    for needle in (fname.encode(), b"platypus", b"post/blob", b"get/csr",
                   b'"meta"', b'"message"', newcomer.encode(),
                   b"CERTIFICATE", b"snoop://"):
        assert needle not in data, "%r is visible on the wire" % needle
