"""post/batch/peerkey: small files in batches under a peer key that the
receiver unwraps once and keeps (src/wire/batch.h).

Wire cases: "pk-sender" and "pk-thief", nodes that exist only on the wire
(snoopwire.py), speak post/batch/peerkey to bob directly. Each batch's
key is derived from the peer key and the batch's own salt: the same
wrapped peer key serves many batches, a batch without its salt or derived
with another salt delivers nothing, a replayed one is refused, and
another sender cannot use a peer key it does not know even when it sends
the very bytes bob has kept. Real mounts: alice's batches to bob go this
way, and two bursts cost bob one RSA unwrap of alice's peer key.
"""

import os
import re
import time

import pytest

import snoopwire as w
from snoopnodes import (DELIVERY_TIMEOUT, build_ca_and, make_tree,
                        module_cluster, run_tool, tree_files, wait_until,
                        wire_peer)

build = build_ca_and("alice", "bob")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "pkbatch", build)


@pytest.fixture(scope="module")
def sender(net):
    return wire_peer(net, "pk-sender", known_by=("bob",))


@pytest.fixture(scope="module")
def thief(net):
    return wire_peer(net, "pk-thief", known_by=("bob",))


@pytest.fixture(scope="module")
def bob_cert(net):
    return net.nodes["bob"].cert("bob")


def _files(prefix, n, size=700):
    return [w.BatchFile("%s/%d.txt" % (prefix, i), os.urandom(size))
            for i in range(n)]


def _reply_ok(reply, req, bob_cert):
    assert reply is not None, "bob dropped the batch"
    reply.check_shape()
    w.check_reply_to(reply, req, w.PEERKEY_METHOD)
    assert reply.verify_with(bob_cert), "the receipt is not signed by bob"
    return reply


def _wait_files(bob, sender, files):
    for f in files:
        rel = "inbox/%s/%s" % (sender, f.path)
        assert wait_until(lambda: bob.exists(rel), DELIVERY_TIMEOUT), rel
        assert bob.read_bytes(rel) == f.data, rel


def _inbox(bob):
    return (bob.files("inbox"), tree_files(bob.state / "inbox"))


def test_one_peer_key_serves_many_batches(net, sender, bob_cert):
    bob = net.nodes["bob"]
    peer_key = os.urandom(32)
    wrapped = w.wrap_key(bob_cert, peer_key)
    for round_ in range(3):
        files = _files("pk-many%d" % round_, 4)
        req, _ = w.build_peerkey_batch(sender.name, sender.key, files,
                                       bob_cert, peer_key, wrapped=wrapped)
        reply = _reply_ok(w.post_batch(bob.addr, sender.name, req,
                                       w.batch_frames(files)), req, bob_cert)
        assert reply.status == "ok", reply.extra
        assert w.parse_batch_receipt(reply.payload) == \
            [(i, "ok", f.sha256) for i, f in enumerate(files)]
        _wait_files(bob, sender.name, files)


@pytest.mark.parametrize("salt", [None, "", "c2hvcnQ=", "!!not base64!!",
                                  "A" * 200])
def test_salt_missing_or_malformed_refused(net, sender, bob_cert, salt):
    bob = net.nodes["bob"]
    before = _inbox(bob)
    files = _files("pk-nosalt", 2)
    req, _ = w.build_peerkey_batch(sender.name, sender.key, files, bob_cert,
                                   os.urandom(32), extra={"salt": salt})
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    _reply_ok(reply, req, bob_cert)
    assert reply.status == "error", reply.extra
    assert "salt" in reply.extra.get("error", ""), reply.extra
    time.sleep(0.3)
    assert _inbox(bob) == before


def test_key_from_another_salt_delivers_nothing(net, sender, bob_cert):
    """Lines wrapped under a key derived with one salt, sent with another
    (or under the peer key itself, as if it were post/batch's key): every
    file fails to open and is refused; nothing is stored."""
    bob = net.nodes["bob"]
    before = _inbox(bob)
    peer_key = os.urandom(32)
    files = _files("pk-othersalt", 3)
    other = w.peerkey_batch_key(peer_key, os.urandom(16), sender.name, "bob")
    for bkey in (other, peer_key):
        req, _ = w.build_peerkey_batch(sender.name, sender.key, files,
                                       bob_cert, peer_key, batch_key=bkey)
        reply = _reply_ok(w.post_batch(bob.addr, sender.name, req,
                                       w.batch_frames(files)), req, bob_cert)
        assert reply.status == "ok", reply.extra
        assert [s for _, s, _ in w.parse_batch_receipt(reply.payload)] == \
            ["permanent"] * 3
    time.sleep(0.3)
    assert _inbox(bob) == before


def test_replayed_peerkey_batch_refused(net, sender, bob_cert):
    bob = net.nodes["bob"]
    files = _files("pk-replay", 2)
    req, _ = w.build_peerkey_batch(sender.name, sender.key, files, bob_cert,
                                   os.urandom(32))
    frames = w.batch_frames(files)
    reply = _reply_ok(w.post_batch(bob.addr, sender.name, req, frames), req,
                      bob_cert)
    assert reply.status == "ok", reply.extra
    _wait_files(bob, sender.name, files)
    again = w.post_batch(bob.addr, sender.name, req, frames)
    if again is not None:
        assert again.status == "error", again.extra
    time.sleep(0.3)
    text = bob.log.read_text(errors="replace")
    for f in files:
        assert len(re.findall(r"received '%s' from '%s'" % (
            re.escape(f.path), sender.name), text)) == 1, f.path


def test_peer_key_of_another_sender_is_of_no_use(net, sender, thief, bob_cert):
    """pk-thief sends the very wrapped peer key bob keeps for pk-sender,
    with lines under a key of its own: bob keys what it keeps by sender,
    unwraps the bytes again for pk-thief, and no file opens."""
    bob = net.nodes["bob"]
    peer_key = os.urandom(32)
    wrapped = w.wrap_key(bob_cert, peer_key)
    files = _files("pk-victim", 2)
    req, _ = w.build_peerkey_batch(sender.name, sender.key, files, bob_cert,
                                   peer_key, wrapped=wrapped)
    reply = _reply_ok(w.post_batch(bob.addr, sender.name, req,
                                   w.batch_frames(files)), req, bob_cert)
    assert reply.status == "ok", reply.extra
    before = _inbox(bob)
    stolen = _files("pk-stolen", 2)
    guess = os.urandom(32)
    req, _ = w.build_peerkey_batch(thief.name, thief.key, stolen, bob_cert,
                                   guess, wrapped=wrapped)
    reply = _reply_ok(w.post_batch(bob.addr, thief.name, req,
                                   w.batch_frames(stolen)), req, bob_cert)
    assert reply.status == "ok", reply.extra
    assert [s for _, s, _ in w.parse_batch_receipt(reply.payload)] == \
        ["permanent"] * 2
    time.sleep(0.3)
    assert _inbox(bob) == before


def test_wrapped_for_another_node_refused(net, sender, bob_cert):
    bob = net.nodes["bob"]
    before = _inbox(bob)
    files = _files("pk-wrongnode", 2)
    peer_key = os.urandom(32)
    req, _ = w.build_peerkey_batch(sender.name, sender.key, files, bob_cert,
                                   peer_key,
                                   wrapped=w.wrap_key(w.new_key(), peer_key))
    reply = _reply_ok(w.post_batch(bob.addr, sender.name, req,
                                   w.batch_frames(files)), req, bob_cert)
    assert reply.status == "error", reply.extra
    time.sleep(0.3)
    assert _inbox(bob) == before


def test_real_nodes_batch_under_one_peer_key(net, tmp_path):
    """Two bursts from alice's outbox arrive whole, in batches, and bob
    keeps one peer key of alice's: it logs each peer key it adds to its
    cache (two first batches that bring the same key at once may both
    unwrap it, and it is added once), and finds the kept one for every
    later batch."""
    alice, bob = net.nodes["alice"], net.nodes["bob"]
    assert wait_until(lambda: alice.exists("outbox/bob"), 15)
    for burst in range(2):
        spec = {"f%03d.bin" % i: os.urandom(600) for i in range(60)}
        make_tree(tmp_path / ("burst%d" % burst), spec)
        r = run_tool(["cp", "-r", str(tmp_path / ("burst%d" % burst)),
                      str(alice.mnt / "outbox" / "bob")], timeout=120)
        assert r.returncode == 0, r.stderr
        want = {k: len(v) for k, v in spec.items()}
        assert wait_until(lambda: bob.files("inbox/alice/burst%d" % burst)
                          == want, 4 * DELIVERY_TIMEOUT, interval=0.3)
        for k, v in spec.items():
            assert bob.read_bytes("inbox/alice/burst%d/%s" % (burst, k)) == v
    text = bob.log.read_text(errors="replace")
    assert "in a batch" in text
    keys = re.findall(r"new peer key from 'alice'", text)
    assert len(keys) == 1, keys
