"""Small files in batches (post/batch): fast, exactly once, and one bad file
refuses only itself.

Real mounts: alice sends to bob through her outbox; bob's log says which
files came in a batch ("in a batch") and every file committed is logged
once ("received 'PATH' from 'alice'"), so a file stored twice would show
as two lines. Wire cases: "batch-sender", a node that exists only on the
wire (snoopwire.py), speaks post/batch to bob directly.
"""

import os
import re
import threading
import time

import pytest

import snoopwire as w
from snoopnodes import (DELIVERY_TIMEOUT, build_ca_and, make_tree,
                        module_cluster, run_tool, sha256_bytes, tree_files,
                        wait_until, wire_peer)

WIRE_SENDER = "batch-sender"

build = build_ca_and("alice", "bob")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "batch", build)


@pytest.fixture(scope="module")
def nodes(net):
    alice = net.nodes["alice"]
    assert wait_until(lambda: alice.exists("outbox/bob"), 15), \
        "alice's outbox has no folder for bob"
    return net.nodes


@pytest.fixture(scope="module")
def sender(net):
    return wire_peer(net, WIRE_SENDER, known_by=("bob",))


@pytest.fixture(scope="module")
def bob_cert(net):
    return net.nodes["bob"].cert("bob")


def received_lines(node, sender, prefix):
    """{path: times logged as received} for paths under PREFIX from SENDER."""
    text = node.log.read_text(errors="replace")
    counts = {}
    pat = re.compile(r"received '(%s[^']*)' from '%s'" % (re.escape(prefix),
                                                           re.escape(sender)))
    for m in pat.finditer(text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def batched_count(node, prefix):
    text = node.log.read_text(errors="replace")
    return len(re.findall(r"received '%s[^']*' from '[^']*' \([^)]*in a batch\)"
                          % re.escape(prefix), text))


def wait_tree(bob, sender, prefix, spec, timeout):
    """Waits until bob's inbox/SENDER/PREFIX holds SPEC, byte for byte."""
    want = {rel: len(data) for rel, data in spec.items()}
    ok = wait_until(lambda: bob.files("inbox/%s/%s" % (sender, prefix)) == want,
                    timeout, interval=0.5)
    got = bob.files("inbox/%s/%s" % (sender, prefix))
    assert ok, "inbox/%s/%s: %d of %d files (missing e.g. %s)\n%s" % (
        sender, prefix, len(got), len(want),
        sorted(set(want) - set(got))[:5], bob.log_tail())
    for rel, data in spec.items():
        assert bob.read_bytes("inbox/%s/%s/%s" % (sender, prefix, rel)) == data, rel


def small_spec(n, size=1024, dirs=10):
    return {"d%02d/f%04d.bin" % (i % dirs, i): os.urandom(size) for i in range(n)}


# --- real mounts ------------------------------------------------------------------

def test_thousand_small_files_in_batches(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    spec = small_spec(1000)
    make_tree(tmp_path / "thousand", spec)
    r = run_tool(["cp", "-r", str(tmp_path / "thousand"),
                  str(alice.mnt / "outbox" / "bob")], timeout=300)
    assert r.returncode == 0, r.stderr
    wait_tree(bob, "alice", "thousand", spec, 4 * DELIVERY_TIMEOUT)
    counts = received_lines(bob, "alice", "thousand/")
    assert len(counts) == 1000, "logged %d of 1000 files" % len(counts)
    twice = {p: n for p, n in counts.items() if n != 1}
    assert not twice, "stored more than once: %s" % sorted(twice)[:5]
    # The burst went in batches, not one request per file.
    assert batched_count(bob, "thousand/") >= 500, (
        "only %d of 1000 files came in a batch" % batched_count(bob, "thousand/"))
    assert wait_until(lambda: not alice.files("outbox/bob/thousand"), 60), \
        "alice still lists files as pending"


def test_file_alone_goes_at_once(nodes):
    alice, bob = nodes["alice"], nodes["bob"]
    data = os.urandom(700)
    t0 = time.monotonic()
    alice.write_bytes("outbox/bob/alone.bin", data)
    ok = wait_until(lambda: bob.exists("inbox/alice/alone.bin"), 10,
                    interval=0.005)
    took = time.monotonic() - t0
    assert ok, bob.log_tail()
    assert bob.read_bytes("inbox/alice/alone.bin") == data
    # No timer holds a file back to wait for company (generous for a loaded
    # machine; bench/run measures the milliseconds).
    assert took < 2.0, "a file alone took %.3f s" % took
    # It went alone: as post/blob, or, once batches reached bob, as a
    # batch of one (post/batch/peerkey spares bob an RSA unwrap).
    # bob logs the file once its folder is synced, just after it shows.
    alone = re.compile(r"received 'alone\.bin' from 'alice' \([^)]*([0-9a-f]\)|"
                       r"in a batch of one\))")
    assert wait_until(lambda: alone.search(bob.log.read_text(errors="replace")),
                      10, interval=0.01), bob.log_tail()
    assert batched_count(bob, "alone.bin") == 0


def _burst(alice, prefix, spec, written, stop):
    for rel, data in spec.items():
        if stop.is_set():
            return
        try:
            path = alice.mnt / "outbox" / "bob" / prefix / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(str(path), "wb") as f:
                f.write(data)
            written.append(rel)
        except OSError:
            return


def _exactly_once(bob, prefix, spec, must):
    """Every file of MUST arrives whole, nothing arrives twice, and anything
    that arrived is whole (no part of a file ever shows)."""
    want = {rel: len(spec[rel]) for rel in must}
    ok = wait_until(lambda: all(
        bob.files("inbox/alice/%s" % prefix).get(r) == n for r, n in want.items()),
        4 * DELIVERY_TIMEOUT, interval=0.5)
    got = bob.files("inbox/alice/%s" % prefix)
    assert ok, "missing after the kill: %s\n%s" % (
        sorted(set(want) - set(got))[:5], bob.log_tail())
    for rel in got:
        assert bob.read_bytes("inbox/alice/%s/%s" % (prefix, rel)) == spec[rel], rel
    counts = received_lines(bob, "alice", prefix + "/")
    twice = {p: n for p, n in counts.items() if n != 1}
    assert not twice, "stored more than once: %s" % twice


def test_receiver_killed_mid_burst(nodes):
    alice, bob = nodes["alice"], nodes["bob"]
    spec = small_spec(400, size=2000, dirs=4)
    written, stop = [], threading.Event()
    t = threading.Thread(target=_burst, args=(alice, "rkill", spec, written, stop))
    t.start()
    assert wait_until(lambda: len(written) >= 100 or not t.is_alive(), 60)
    bob.crash()
    t.join(120)
    bob.restart()
    _exactly_once(bob, "rkill", spec, written)


def test_sender_killed_mid_burst(nodes):
    alice, bob = nodes["alice"], nodes["bob"]
    spec = small_spec(400, size=3000, dirs=4)
    written, stop = [], threading.Event()
    t = threading.Thread(target=_burst, args=(alice, "skill", spec, written, stop))
    t.start()
    assert wait_until(lambda: len(written) >= 150 or not t.is_alive(), 60)
    alice.crash()
    stop.set()
    t.join(60)
    alice.restart()
    # A close() that returned is a file that must arrive; one the kill cut
    # may arrive or not, but never in part.
    _exactly_once(bob, "skill", spec, written[:-1])


# --- on the wire ------------------------------------------------------------------

def snapshot(bob):
    return (bob.files("inbox"), tree_files(bob.state / "inbox"))


def _files(prefix, n, size=900):
    return [w.BatchFile("%s/%d.txt" % (prefix, i), os.urandom(size))
            for i in range(n)]


def _check_reply(reply, req, bob_cert):
    assert reply is not None, "bob dropped the batch"
    reply.check_shape()
    w.check_reply_to(reply, req, "post/batch")
    assert reply.verify_with(bob_cert), "the receipt is not signed by bob"


def _wait_files(bob, sender, files):
    for f in files:
        rel = "inbox/%s/%s" % (sender, f.path)
        assert wait_until(lambda: bob.exists(rel), DELIVERY_TIMEOUT), rel
        assert bob.read_bytes(rel) == f.data, rel


def test_wire_batch_delivers_each_file(net, sender, bob_cert):
    bob = net.nodes["bob"]
    files = _files("wire-ok", 5)
    req, _ = w.build_batch(sender.name, sender.key, files, bob_cert)
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    _check_reply(reply, req, bob_cert)
    assert reply.status == "ok", reply.extra
    lines = w.parse_batch_receipt(reply.payload)
    assert lines == [(i, "ok", f.sha256) for i, f in enumerate(files)], lines
    _wait_files(bob, sender.name, files)


def test_wire_one_bad_entry_refuses_only_it(net, sender, bob_cert):
    bob = net.nodes["bob"]
    files = _files("wire-bad", 4)
    # Entry 1: a chunk other than the one the signed sha256 names.
    files[1].chunks = [w.seal_chunk(files[1].key, files[1].blob_id, 0, True,
                                    os.urandom(900))]
    # Entry 2: a path that escapes.
    files[2].path = "../escape-%s.txt" % os.urandom(4).hex()
    req, _ = w.build_batch(sender.name, sender.key, files, bob_cert)
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    _check_reply(reply, req, bob_cert)
    assert reply.status == "ok", reply.extra
    lines = w.parse_batch_receipt(reply.payload)
    assert [s for _, s, _ in lines] == ["ok", "permanent", "permanent", "ok"], lines
    _wait_files(bob, sender.name, [files[0], files[3]])
    assert not bob.exists("inbox/%s/wire-bad/1.txt" % sender.name)
    assert "escape-" not in repr(tree_files(bob.state))


def test_wire_replayed_batch_refused(net, sender, bob_cert):
    bob = net.nodes["bob"]
    files = _files("wire-replay", 3)
    req, _ = w.build_batch(sender.name, sender.key, files, bob_cert)
    frames = w.batch_frames(files)
    reply = w.post_batch(bob.addr, sender.name, req, frames)
    _check_reply(reply, req, bob_cert)
    assert reply.status == "ok", reply.extra
    _wait_files(bob, sender.name, files)
    before = bob.log.read_text(errors="replace").count("wire-replay/")
    again = w.post_batch(bob.addr, sender.name, req, frames)
    if again is not None:
        assert again.status == "error", again.extra
        assert again.verify_with(bob_cert)
    time.sleep(0.5)
    counts = received_lines(bob, sender.name, "wire-replay/")
    assert counts == {f.path: 1 for f in files}, counts
    assert bob.log.read_text(errors="replace").count("wire-replay/") <= before + 3
    # A batch sent again fresh (its receipt was lost) is answered, not stored.
    fresh, _ = w.build_batch(sender.name, sender.key, files, bob_cert)
    reply = w.post_batch(bob.addr, sender.name, fresh, frames)
    _check_reply(reply, fresh, bob_cert)
    assert [s for _, s, _ in w.parse_batch_receipt(reply.payload)] == ["ok"] * 3
    assert received_lines(bob, sender.name, "wire-replay/") == \
        {f.path: 1 for f in files}


def test_wire_forged_batch_signature_refused(net, sender, bob_cert):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    files = _files("wire-forged", 3)
    other = w.new_key()
    req, _ = w.build_batch(sender.name, sender.key, files, bob_cert,
                           sign_with=lambda m: w.sign(other, m))
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    if reply is not None:
        assert reply.status == "error", reply.extra
        assert reply.payload is None
    time.sleep(0.5)
    assert snapshot(bob) == before


def test_wire_batch_as_another_sender_refused(net, sender, bob_cert):
    """A batch claiming alice's name (her paths in inbox/alice) over the
    wire sender's own TLS identity is refused whole; a batch's paths can
    never leave the sender's own folder."""
    bob = net.nodes["bob"]
    before = snapshot(bob)
    files = _files("wire-claim", 2)
    req, _ = w.build_batch("alice", sender.key, files, bob_cert)
    reply = w.post_batch(bob.addr, "alice", req, w.batch_frames(files),
                         as_node=sender.name)
    if reply is not None:
        assert reply.status == "error", reply.extra
    files = _files("wire-climb", 2)
    files[0].path = "../alice/stolen-%s.txt" % os.urandom(3).hex()
    req, _ = w.build_batch(sender.name, sender.key, files, bob_cert)
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    _check_reply(reply, req, bob_cert)
    assert [s for _, s, _ in w.parse_batch_receipt(reply.payload)] == \
        ["permanent", "ok"]
    _wait_files(bob, sender.name, [files[1]])
    inbox_alice = bob.files("inbox/alice")
    assert not any("stolen-" in p or "wire-claim" in p for p in inbox_alice)
    assert before[0].keys() <= bob.files("inbox").keys()


def test_wire_batch_key_for_another_node_refused(net, sender, bob_cert):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    files = _files("wire-wrongkey", 2)
    req, _ = w.build_batch(sender.name, sender.key, files, w.new_key())
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    _check_reply(reply, req, bob_cert)
    assert reply.status == "error" and reply.extra.get("permanent") == 1, \
        reply.extra
    time.sleep(0.3)
    assert snapshot(bob) == before


def test_wire_batch_malformed_text_refused(net, sender, bob_cert):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    files = _files("wire-malformed", 2)
    req, _ = w.build_batch(sender.name, sender.key, files, bob_cert,
                           text="not a line\n")
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    _check_reply(reply, req, bob_cert)
    assert reply.status == "error", reply.extra
    # count says 2 but 3 lines
    req, _ = w.build_batch(sender.name, sender.key, files + _files("x", 1),
                           bob_cert, extra={"count": 2})
    reply = w.post_batch(bob.addr, sender.name, req, w.batch_frames(files))
    _check_reply(reply, req, bob_cert)
    assert reply.status == "error", reply.extra
    time.sleep(0.3)
    assert snapshot(bob) == before


def test_deleting_files_mid_burst_delivers_the_rest(nodes):
    """Deleting a pending file cancels its job, which cuts a batch it leads:
    the other files of that batch must still arrive, once."""
    alice, bob = nodes["alice"], nodes["bob"]
    spec = small_spec(300, size=1500, dirs=3)
    deleted = set()
    for k, (rel, data) in enumerate(sorted(spec.items())):
        path = alice.mnt / "outbox" / "bob" / "cut" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(str(path), "wb") as f:
            f.write(data)
        if k % 10 == 5:
            try:
                os.unlink(str(alice.mnt / "outbox" / "bob" / "cut" / rel))
                deleted.add(rel)
            except FileNotFoundError:
                pass   # delivered already: it left the outbox
    keep = [rel for rel in spec if rel not in deleted]
    _exactly_once(bob, "cut", spec, keep)
    assert wait_until(lambda: not alice.files("outbox/bob/cut"), 60), \
        "alice still lists %s" % sorted(alice.files("outbox/bob/cut"))[:5]
