"""Several transfers to one peer at the same time.

The sender keeps up to 4 transfers per peer in flight, each on its own TLS
connection (PEER_INFLIGHT_MAX in src/delivery/queue.h); the receiver locks per
blob, not per sender. Checked three ways:

- on the wire against bob: the same blob twice at once is refused with a
  reason, while a different blob from the same sender passes meanwhile, and
  the first one then completes;
- against a fake receiver that holds every request until the test lets
  go: alice opens several connections to one peer at once, never more than
  4, `snoopfs status` and the xattrs say so, another peer is still served
  meanwhile, and everything she sent is delivered;
- between real nodes: a large file in flight, whether sent after its close
  or streaming while its writer holds it open, does not hold back small
  files written after it to the same peer.
"""

import contextlib
import os
import socket
import threading
import time

import pytest

import snoopwire as w
from snoopnodes import (DELIVERY_TIMEOUT, bounded, build_ca_and,
                        module_cluster, run_tool, sha256_bytes,
                        wait_delivered, wait_outbox_gone, wait_until,
                        wire_peer)

PEER_INFLIGHT_MAX = 4   # src/delivery/queue.h
SENDER = "par-sender"


build = build_ca_and("alice", "bob")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "parallel", build)


@pytest.fixture(scope="module")
def sender(net):
    """A wire-only sender that bob knows."""
    return wire_peer(net, SENDER, known_by=("bob",))


def sealed(bob_cert, data):
    key, blob_id, chunks = w.seal_blob(data)
    extra = w.blob_extra(blob_id, len(data), len(chunks), ["bob"],
                         {"bob": w.wrap_key(bob_cert, key)},
                         w.sealed_hash(chunks))
    return chunks, extra


# --- the receiver: one lock per blob ------------------------------------------

def test_same_blob_twice_refused_other_blob_passes(net, sender):
    bob = net.nodes["bob"]
    bob_cert = bob.cert("bob")
    data_a = os.urandom(3 * w.BLOB_CHUNK + 100)
    chunks_a, extra_a = sealed(bob_cert, data_a)

    # Blob A starts and stops after its first chunk, connection kept open:
    # bob's thread for it now holds A's lock, waiting for more.
    req = w.build("post/blob", "par/a.bin", sender.name, key=sender.key,
                  extra=extra_a)
    first = w.connect(bob.addr, timeout=30, as_node=w.identity(sender.name))
    try:
        w.send_frame(first, req.body)
        have = w.parse(w.recv_frame(first))
        assert have.status == "ok", have.extra
        assert have.extra.get("have") == 0, have.extra
        first.sendall(w.chunk_frame(0, chunks_a[0]))

        # The same blob again, from a second connection: refused, with a
        # reason that says why, and not permanent (a retry later is right).
        again = w.post_blob(bob.addr, sender.name, sender.key, "par/a.bin",
                            chunks_a, extra_a, timeout=15)
        assert again.reply is not None, again
        assert again.reply.status == "error", again.reply.extra
        why = again.reply.extra.get("error", "")
        assert "another transfer of this blob" in why and "in progress" in why, why
        assert again.reply.extra.get("permanent") != 1, again.reply.extra
        assert again.reply.verify_with(bob_cert)

        # A different blob from the same sender passes meanwhile.
        data_b = os.urandom(2 * w.BLOB_CHUNK + 7)
        chunks_b, extra_b = sealed(bob_cert, data_b)
        other = w.post_blob(bob.addr, sender.name, sender.key, "par/b.bin",
                            chunks_b, extra_b, timeout=30)
        assert other.accepted, "second blob refused while A is open: %r" % (
            other.reply.extra if other.reply else other)
        assert other.final.extra.get("sha256") == extra_b["sha256"]
        wait_delivered(bob, sender.name, "par/b.bin", sha256_bytes(data_b),
                       size=len(data_b))
        assert not (bob.state / "inbox" / sender.name / "par" / "a.bin").exists()

        # A then completes on its own connection.
        for i in range(1, len(chunks_a)):
            first.sendall(w.chunk_frame(i, chunks_a[i]))
        receipt = w.parse(w.recv_frame(first))
        assert receipt.status == "ok", receipt.extra
        assert receipt.extra.get("sha256") == extra_a["sha256"]
    finally:
        first.close()
    wait_delivered(bob, sender.name, "par/a.bin", sha256_bytes(data_a),
                   size=len(data_a))
    assert "another transfer of this blob" in bob.log.read_text()


def test_two_blobs_same_path_at_once_last_wins(net, sender):
    """Two different blobs for one inbox path committing in parallel: no
    error, no half file, the file is one of them whole."""
    bob = net.nodes["bob"]
    bob_cert = bob.cert("bob")
    datas = [os.urandom(w.BLOB_CHUNK + 1000 * (i + 1)) for i in range(4)]
    outs = [None] * len(datas)

    def send(i):
        chunks, extra = sealed(bob_cert, datas[i])
        outs[i] = w.post_blob(bob.addr, sender.name, sender.key, "par/same.bin",
                              chunks, extra, timeout=30)

    ths = [threading.Thread(target=send, args=(i,)) for i in range(len(datas))]
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    for o in outs:
        assert o is not None and o.accepted, o
    got = bob.read_bytes("inbox/%s/par/same.bin" % sender.name)
    assert got in datas, "inbox file is none of the blobs (len %d)" % len(got)
    leftovers = os.listdir(bob.state / "incoming" / sender.name)
    assert not [n for n in leftovers if n.endswith(".part")], leftovers


# --- the sender: several connections to one peer -------------------------------

class FakeReceiver:
    """Accepts alice's connections as node NAME and answers post/blob like a
    node from before "push" would (a "have" reply first, even to a pushed
    chunk), but holds each request until the test sets RELEASE (or HOLD
    seconds passed), recording the most that were open together; ALL_OPEN
    is set once WANT are open at once."""

    def __init__(self, sock, name, key, want, hold=30):
        self.sock, self.name, self.key = sock, name, key
        self.want, self.hold = want, hold
        self.lock = threading.Lock()
        self.open_now = 0
        self.most = 0
        self.ids_together = set()
        self.paths = []
        self.pushed = []
        self.connections = 0
        self.errors = []
        self.unknown_methods = []
        self.release = threading.Event()
        self.all_open = threading.Event()
        self.stop = False

    def serve(self):
        self.sock.settimeout(0.5)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.handle, args=(conn,),
                             daemon=True).start()

    def handle(self, conn):
        with conn:
            conn.settimeout(30)
            try:
                conn = w.server_wrap(conn, w.identity(self.name))
                while True:
                    try:
                        req = w.parse(w.recv_frame(conn))
                    except (w.Dropped, OSError):
                        return   # the sender closed a kept connection
                    if req.method != "post/blob":
                        return self.unknown(conn, req)
                    self.one(conn, req)
            except Exception as e:  # reported by the test
                self.errors.append(repr(e))

    def unknown(self, conn, req):
        """What a node from before post/batch answers it: "unknown method",
        then the connection ends (the frames behind it are read first, so
        that closing does not reset the answer away)."""
        with self.lock:
            self.unknown_methods.append(req.method)
        refusal = w.build("reply", req.method, self.name, key=self.key,
                          extra={"re": req.message_id, "status": "error",
                                 "error": "unknown method"})
        w.send_frame(conn, refusal.body)
        conn.settimeout(2)
        try:
            while True:
                w.recv_frame(conn)
        except (w.Dropped, OSError):
            pass

    def one(self, conn, req):
        with self.lock:
            self.open_now += 1
            self.most = max(self.most, self.open_now)
            if self.open_now > 1:
                self.ids_together.add(req.extra["id"])
            if self.open_now >= self.want:
                self.all_open.set()
        try:
            self.release.wait(self.hold)
            have = w.build("reply", req.method, self.name, key=self.key,
                           extra={"re": req.message_id, "status": "ok",
                                  "have": 0})
            w.send_frame(conn, have.body)
            chunks = [w.recv_frame(conn)[8:] for _ in range(req.extra["chunks"])]
            receipt = w.build("reply", req.method, self.name, key=self.key,
                              extra={"re": req.message_id, "status": "ok",
                                     "sha256": w.sealed_hash(chunks)})
            w.send_frame(conn, receipt.body)
            with self.lock:
                self.paths.append(req.args)
                self.pushed.append(req.extra.get("push"))
        finally:
            with self.lock:
                self.open_now -= 1


@contextlib.contextmanager
def fake_receiver(net, name):
    """A FakeReceiver serving as NAME (enrolled, and known to alice) on a
    thread of its own, stopped when the block ends."""
    alice = net.nodes["alice"]
    srv = socket.socket()
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        fake = wire_peer(net, name, known_by=("alice",),
                         address="127.0.0.1:%d" % srv.getsockname()[1])
        assert wait_until(lambda: alice.exists("outbox/%s" % name), 30), (
            "alice has no outbox/%s" % name)
        rx = FakeReceiver(srv, name, fake.key, want=PEER_INFLIGHT_MAX)
        th = threading.Thread(target=rx.serve, daemon=True)
        th.start()
        try:
            yield rx
        finally:
            rx.release.set()
            rx.stop = True
            th.join(5)
    finally:
        srv.close()


def test_sender_runs_several_transfers_to_one_peer(net):
    alice, bob = net.nodes["alice"], net.nodes["bob"]
    name = "par-fake"
    files = ["f%02d.txt" % i for i in range(3 * PEER_INFLIGHT_MAX)]
    with fake_receiver(net, name) as rx:
        for f in files:
            alice.write_bytes("outbox/%s/%s" % (name, f), f.encode() * 100)
        # Without parallel transfers only one request is ever open here.
        all_open = rx.all_open.wait(30)
        # The last files may still be sealing (release runs after close).
        want = "%s: %d pending, %d sending at once" % (
            name, len(files), PEER_INFLIGHT_MAX)
        status = []
        wait_until(lambda: status.append(net.snoop.run(
            "status", alice.mnt).stdout) or want in status[-1], 10)
        states = [alice.getxattr("outbox/%s/%s" % (name, f)) for f in files]
        # One peer holding all it may have in flight leaves workers for
        # the others: bob still gets a file meanwhile.
        if all_open:
            data = os.urandom(500)
            alice.write_bytes("outbox/bob/while-busy.txt", data)
            wait_delivered(bob, "alice", "while-busy.txt", sha256_bytes(data),
                           size=len(data), timeout=20)
            assert not rx.release.is_set() and rx.open_now == PEER_INFLIGHT_MAX
        rx.release.set()
        assert all_open, (
            "at most %d transfers to one peer were open at once, wanted %d"
            % (rx.most, PEER_INFLIGHT_MAX))
        assert want in status[-1], status[-1]
        sending = [s for s in states if s.startswith("sending")]
        assert len(sending) == PEER_INFLIGHT_MAX, states
        assert states.count("queued") == len(files) - PEER_INFLIGHT_MAX, states
        for f in files:
            wait_outbox_gone(alice, name, f)
    assert not rx.errors, rx.errors
    assert sorted(rx.paths) == files, rx.paths
    # Small files come pushed, and reach a receiver that answers "have" first.
    assert rx.pushed == [1] * len(files), rx.pushed
    assert rx.most == PEER_INFLIGHT_MAX, (
        "%d transfers to one peer were open at once, wanted at most %d"
        % (rx.most, PEER_INFLIGHT_MAX))
    assert len(rx.ids_together) >= PEER_INFLIGHT_MAX - 1, rx.ids_together
    # Each on its own connection, and kept connections reused: fewer
    # connections than files.
    assert PEER_INFLIGHT_MAX <= rx.connections < len(files), rx.connections


def test_receiver_without_batches_gets_files_one_by_one(net):
    """A receiver from before post/batch/peerkey and post/batch answers both
    "unknown method", as older snoopfs do: alice tries the batch under a
    peer key, then the plain batch, then sends the files one by one as
    post/blob, and each arrives once."""
    alice = net.nodes["alice"]
    name = "old-fake"
    files = ["g%02d.txt" % i for i in range(3 * PEER_INFLIGHT_MAX)]
    with fake_receiver(net, name) as rx:
        for f in files:
            alice.write_bytes("outbox/%s/%s" % (name, f), f.encode() * 50)
        # The first files go alone while the others queue behind them;
        # once these are let go, the queued ones would make a batch.
        assert rx.all_open.wait(30), "only %d transfers opened" % rx.most
        rx.release.set()
        for f in files:
            wait_outbox_gone(alice, name, f)
    assert not rx.errors, rx.errors
    assert sorted(rx.paths) == files, rx.paths
    assert rx.unknown_methods[:1] == ["post/batch/peerkey"], rx.unknown_methods
    assert set(rx.unknown_methods) == {"post/batch/peerkey", "post/batch"}, (
        rx.unknown_methods)
    log = alice.log_tail(400)
    assert "%s does not know post/batch/peerkey" % name in log, log
    assert "%s does not know post/batch (an older" % name in log, log


def test_large_file_does_not_hold_back_small_ones(net, tmp_path):
    """A large file sent after its close (it does not stream: a write
    behind the writer just before the close throws the stream away, and
    the file goes whole as post/blob) does not hold back small files
    written after it to the same peer."""
    alice, bob = net.nodes["alice"], net.nodes["bob"]
    big = tmp_path / "big.bin"
    data = os.urandom(128 << 20)
    big.write_bytes(data)
    big_path = bob.state / "inbox" / "alice" / "big.bin"
    # The close returns once the file is sealed and queued; the transfer to
    # bob (about 128 MiB) takes a while, and the small files queue behind it.
    f = bounded(open, str(alice.mnt / "outbox" / "bob" / "big.bin"), "wb", 0)
    try:
        for off in range(0, len(data), 1 << 20):
            bounded(f.write, data[off:off + (1 << 20)])
        bounded(f.seek, 0)
        bounded(f.write, data[:1])
    finally:
        f.close()
    small = {"small-%d.txt" % i: os.urandom(1000) for i in range(5)}
    for rel, data in small.items():
        alice.write_bytes("outbox/bob/%s" % rel, data)
    t0 = time.monotonic()
    inbox = bob.state / "inbox" / "alice"
    arrived = wait_until(
        lambda: all((inbox / rel).exists() for rel in small), DELIVERY_TIMEOUT,
        interval=0.01)
    big_done = big_path.exists()
    assert arrived, "small files did not arrive\n%s" % alice.log_tail()
    assert not big_done, (
        "the small files arrived only after the large one (%.1f s): "
        "transfers to bob went one at a time" % (time.monotonic() - t0))
    for rel, data in small.items():
        assert bob.read_bytes("inbox/alice/%s" % rel) == data
    wait_delivered(bob, "alice", "big.bin", sha256_bytes(big.read_bytes()),
                   size=128 << 20, timeout=300)
    got = [line for line in bob.log.read_text(errors="replace").splitlines()
           if "received 'big.bin' from 'alice'" in line]
    assert got and "streamed" not in got[-1], (
        "big.bin was to go whole after its close: %s" % got)


def test_streaming_file_does_not_hold_back_small_ones(net):
    """A large file that streams while its writer holds it open (post/stream,
    on by default) does not hold back small files written meanwhile to
    the same peer: they arrive before the large one is even closed."""
    alice, bob = net.nodes["alice"], net.nodes["bob"]
    data = os.urandom(64 << 20)
    inbox = bob.state / "inbox" / "alice"
    f = bounded(open, str(alice.mnt / "outbox" / "bob" / "open.bin"), "wb", 0)
    try:
        for off in range(0, 48 << 20, 1 << 20):
            bounded(f.write, data[off:off + (1 << 20)])
        small = {"meanwhile-%d.txt" % i: os.urandom(1000) for i in range(5)}
        for rel, data_small in small.items():
            alice.write_bytes("outbox/bob/%s" % rel, data_small)
        arrived = wait_until(
            lambda: all((inbox / rel).exists() for rel in small),
            DELIVERY_TIMEOUT, interval=0.01)
        assert arrived, ("small files did not arrive while a file streamed"
                         "\n%s" % alice.log_tail())
        assert not (inbox / "open.bin").exists()
        for rel, data_small in small.items():
            assert bob.read_bytes("inbox/alice/%s" % rel) == data_small
        for off in range(48 << 20, len(data), 1 << 20):
            bounded(f.write, data[off:off + (1 << 20)])
    finally:
        f.close()
    wait_delivered(bob, "alice", "open.bin", sha256_bytes(data),
                   size=len(data), timeout=300)
    assert "post/stream 'open.bin' from 'alice'" in bob.log.read_text(
        errors="replace"), "open.bin did not stream"
    wait_outbox_gone(alice, "bob", "open.bin")
