"""Replay protection: recorded messages sent again are refused.

A raw client records the exact bytes of a valid signed message, sends them
once (accepted) and again on a new connection (refused as a replay), also
after the receiving node was unmounted and mounted again. Messages whose
timestamp lies 10 minutes in the past or future are refused by the window.
Every test ends by checking that fresh messages are still served. On the
client side, a fake receiver answers a node's post/blob with a receipt dated
10 minutes ago, which the node must not take as delivery.
"""

import datetime
import os
import socket
import sqlite3
import threading

import pytest

import snoopwire as w
from snoopnodes import (build_ca_and_alice, dead_addr, module_cluster,
                        wait_until)

_counter = [0]


def fresh_name(prefix="rp"):
    _counter[0] += 1
    return "%s-%d-%d" % (prefix, os.getpid() % 1000, _counter[0])


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "replay",
                              build_ca_and_alice)


class Client:
    """A node that exists only on the wire."""

    def __init__(self, name, key, cert):
        self.name, self.key, self.cert = name, key, cert


def enroll_client(net):
    name = fresh_name()
    key = w.new_key()
    res = w.enroll(net.ca.addr, name, key, dead_addr(), token=net.token(name))
    assert res.ok, "enrollment refused: %r" % (res.reply,)
    return Client(name, key, res.cert)


@pytest.fixture(scope="module")
def client(net):
    return enroll_client(net)


def timestamp_at(delta_seconds):
    t = (datetime.datetime.now(datetime.timezone.utc) +
         datetime.timedelta(seconds=delta_seconds))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def send(addr, req):
    """Sends REQ (a Request or raw bytes) on a new connection; the reply."""
    return w.exchange(addr, req)


def assert_refused(reply, words):
    """REPLY is a signed error reply whose reason contains WORDS."""
    assert reply is not None, "dropped instead of a signed refusal"
    reply.check_shape()
    assert reply.status == "error", "expected a refusal, got %r" % (reply,)
    assert words in reply.extra.get("error", ""), reply.extra


def assert_serves(net, client, addr):
    req, reply = w.get_crt(addr, "", client.name, client.key)
    assert reply is not None and reply.status == "ok", (
        "fresh get/crt refused after a replay: %r" % (reply,))


def test_replayed_get_crt_refused(net, client):
    alice = net.nodes["alice"]
    req = w.build("get/crt", "", client.name, key=client.key)
    first = send(alice.addr, req)
    assert first is not None and first.status == "ok", first
    again = send(alice.addr, req.body)
    assert_refused(again, "replayed message")
    assert again.verify_with(alice.cert("alice"))
    assert "replayed message" in alice.log.read_text()
    assert_serves(net, client, alice.addr)


def test_replayed_post_crt_refused(net, client):
    alice = net.nodes["alice"]
    pem = client.cert.public_bytes(w.serialization.Encoding.PEM).decode()
    req = w.build("post/crt", "", client.name, payload=pem, key=client.key)
    first = send(alice.addr, req)
    assert first is not None and first.status == "ok", first
    assert_refused(send(alice.addr, req.body), "replayed message")
    assert_serves(net, client, alice.addr)


def test_replayed_post_blob_refused(net, client):
    alice = net.nodes["alice"]
    certs = {"alice": alice.cert("alice")}
    data = os.urandom(1000)
    path = fresh_name("replay") + ".bin"
    out = w.send_file(alice.addr, client.name, client.key, path, data,
                      ["alice"], certs)
    assert out.accepted, out
    again = send(alice.addr, out.request.body)
    assert_refused(again, "replayed message")
    assert_serves(net, client, alice.addr)


@pytest.mark.parametrize("delta", [-600, 600], ids=["past", "future"])
def test_timestamp_outside_window_refused(net, client, delta):
    alice = net.nodes["alice"]
    req = w.build("get/crt", "", client.name, key=client.key,
                  timestamp=timestamp_at(delta))
    assert_refused(send(alice.addr, req), "window")
    # Refused by its timestamp only: the same id with a fresh one is fine.
    ok = w.build("get/crt", "", client.name, key=client.key,
                 message_id=req.message_id)
    reply = send(alice.addr, ok)
    assert reply is not None and reply.status == "ok", reply


def test_timestamp_inside_window_accepted(net, client):
    alice = net.nodes["alice"]
    for delta in (-200, 200):
        req = w.build("get/crt", "", client.name, key=client.key,
                      timestamp=timestamp_at(delta))
        reply = send(alice.addr, req)
        assert reply is not None and reply.status == "ok", reply


def test_replayed_get_csr_gets_no_second_certificate(net):
    name = fresh_name()
    key = w.new_key()
    req = w.csr_request(name, key, dead_addr(), token=net.token(name))
    first = send(net.ca.addr, req)
    assert first is not None and first.status == "ok", first
    serial = w.load_cert(first.payload).serial_number
    again = send(net.ca.addr, req.body)
    assert_refused(again, "replayed message")
    assert again.payload is None
    # The CA still holds the first certificate, and enrolls others.
    other = enroll_client(net)
    req2, reply = w.get_crt(net.ca.addr, name, other.name, other.key)
    assert reply is not None and reply.status == "ok", reply
    assert w.load_cert(reply.payload).serial_number == serial


def test_replay_refused_after_remount(net, client):
    alice = net.nodes["alice"]
    req = w.build("get/crt", "", client.name, key=client.key)
    first = send(alice.addr, req)
    assert first is not None and first.status == "ok", first
    alice.unmount()
    alice.mount()
    assert_refused(send(alice.addr, req.body), "replayed message")
    assert_serves(net, client, alice.addr)


def test_replay_record_survives_another_reader(net, client):
    """An operator looking into replay.db (sqlite3 opens and closes it)
    must not take the running daemon's record away: what the daemon
    accepted before and after the look is still refused after a remount.
    (The daemon opens its store after it forks: SQLite connections must not
    cross a fork, their locks stay behind.)"""
    alice = net.nodes["alice"]
    before = w.build("get/crt", "", client.name, key=client.key)
    assert send(alice.addr, before).status == "ok"
    db = sqlite3.connect(str(alice.state / "replay.db"))
    try:
        assert db.execute("SELECT count(*) FROM seen").fetchone()[0] >= 1
    finally:
        db.close()
    after = w.build("get/crt", "", client.name, key=client.key)
    assert send(alice.addr, after).status == "ok"
    alice.unmount()
    alice.mount()
    assert_refused(send(alice.addr, before.body), "replayed message")
    assert_refused(send(alice.addr, after.body), "replayed message")
    assert_serves(net, client, alice.addr)


def fake_receiver(sock, name, key, receipt_delta, result):
    """Answers one post/blob like a node would, but dates the receipt
    RECEIPT_DELTA seconds away from now; records what happened in RESULT."""
    sock.settimeout(60)
    try:
        conn, _ = sock.accept()
    except socket.timeout:
        result["error"] = "nobody connected"
        return
    with conn:
        conn.settimeout(30)
        try:
            # Alice reaches the fake over mutual TLS, as any node.
            conn = w.server_wrap(conn, w.identity(name))
            req = w.parse(w.recv_frame(conn))
            result["request"] = req
            have = w.build("reply", req.method, name, key=key,
                           extra={"re": req.message_id, "status": "ok",
                                  "have": 0})
            w.send_frame(conn, have.body)
            chunks = []
            for _ in range(req.extra["chunks"]):
                body = w.recv_frame(conn)
                chunks.append(body[8:])
            receipt = w.build("reply", req.method, name, key=key,
                              timestamp=timestamp_at(receipt_delta),
                              extra={"re": req.message_id, "status": "ok",
                                     "sha256": w.sealed_hash(chunks)})
            w.send_frame(conn, receipt.body)
            result["sent"] = True
            # Wait for the sender to close: it must not take the receipt.
            try:
                conn.recv(1)
            except OSError:
                pass
        except Exception as e:  # reported by the test, not lost in a thread
            result["error"] = repr(e)


def test_stale_receipt_refused(net):
    """A receipt dated 10 minutes ago (a recorded one) does not count."""
    alice = net.nodes["alice"]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    addr = "127.0.0.1:%d" % srv.getsockname()[1]
    name = fresh_name("fake")
    key = w.new_key()
    res = w.enroll(net.ca.addr, name, key, addr, token=net.token(name))
    assert res.ok, res
    pem = res.cert.public_bytes(w.serialization.Encoding.PEM).decode()
    reply = send(alice.addr, w.build("post/crt", "", name, payload=pem,
                                     key=key))
    assert reply is not None and reply.status == "ok", reply
    assert wait_until(lambda: alice.exists("outbox/%s" % name), 30), (
        "alice has no outbox/%s" % name)
    result = {}
    th = threading.Thread(target=fake_receiver,
                          args=(srv, name, key, -600, result), daemon=True)
    th.start()
    try:
        alice.write_bytes("outbox/%s/stale.txt" % name, b"hello\n")
        th.join(90)
        assert not th.is_alive(), "alice never shipped to the fake receiver"
        assert "error" not in result, result
        assert result.get("sent"), result
        assert wait_until(lambda: "window" in alice.log.read_text(), 10), (
            alice.log_tail())
        # Not delivered: the file is still pending in the outbox.
        assert alice.exists("outbox/%s/stale.txt" % name)
    finally:
        srv.close()
    # The transfer is still pending; nothing listens there now, so alice
    # keeps it and retries later. Cancel it so that teardown is clean.
    os.unlink(alice.mnt / "outbox" / name / "stale.txt")
