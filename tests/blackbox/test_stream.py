"""Streaming while writing (issue 21, post/stream, on by default;
`stream = off` turns it off): a file written in order into outbox/PEER/
starts on its way before the close (the chunks sealed ahead go as they are
sealed) and is closed by a signed trailer; the receiver keeps what arrives
in the blob's part file (STATE/incoming/SENDER/ID.part, as post/blob does)
and shows the file only once the trailer verified. A writer that goes
back, truncates or removes the file, a daemon killed mid-stream and a
stream that stalls fall back to post/blob, which resumes from the part:
exactly once in every case.

* test_streams_before_close: while the writer pauses mid-file, bob holds
  (in a part file) most of what was written, nothing shows in his inbox;
  after the close the file arrives whole, and was streamed.
* test_write_behind_truncate_unlink: a write behind the writer, a truncate
  into the sealed part, an unlink before the close: the right content once
  (nothing for the unlink), no part left at bob (the sender tells him to
  drop a stream it gave up).
* test_sender_killed_mid_stream: kill -9 of alice while streaming before
  the close: nothing at bob, ever; after the restart the unclosed file is
  held as today (never shipped in part), and bob's part goes with
  --partial-ttl.
* test_receiver_killed_mid_stream: kill -9 of bob while streaming before
  the close; the writer goes on and closes: after his restart the file
  arrives once, resumed from bob's part (not sent again from 0).
* test_stalled_stream_ends_and_resumes: a writer that holds the file open
  and writes nothing: the sender ends the stream after its bound, bob
  keeps the part, and the close resumes from it.
* test_relayed_file_streams_to_first_recipient: a big file for three
  recipients, written slowly: it streams to the first, who relays it; all
  get it once.
* test_stream_off: `stream = off` in the config file: nothing goes before
  the close.
"""

import os
import re
import time

import pytest

from snoopnodes import (DELIVERY_TIMEOUT, bounded, sha256_bytes,
                        wait_delivered, wait_outbox_gone, wait_until)
from test_delivery_faults import (SEALED_CHUNK, assert_delivered_once,
                                  at_rest, pair, parts)

MIB = 1 << 20


def held(node):
    """Bytes in NODE's part files (STATE/incoming/**/*.part): the streams
    and transfers not yet closed by their trailer or last chunk."""
    return sum(parts(node).values())


def unnamed_bytes(node):
    """Bytes in files NODE's daemon holds open under STATE/incoming that
    have no name (a stream's file had none before its part was named):
    none may be left."""
    pid = node.read_pid()
    total = 0
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if "/incoming/" in target and target.endswith("(deleted)"):
            try:
                st = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            total += st.st_blocks * 512
    return total


def new_part(node, before, at_least):
    """A part file of NODE not in BEFORE (names) of AT_LEAST bytes."""
    return any(p not in before and s >= at_least
               for p, s in parts(node).items())


def write_in_order(f, data, start, end, step=MIB, pause=0.0):
    for i in range(start, end, step):
        bounded(f.write, data[i:min(i + step, end)])
        if pause:
            time.sleep(pause)


def log_text(node):
    return node.log.read_text(errors="replace")


def resumed_at(node, name):
    """The chunks NODE's post/blob of NAME from alice resumed at."""
    pat = re.compile(r"post/blob '%s' from 'alice': resuming at chunk "
                     r"(\d+) of (\d+)" % re.escape(name))
    return [int(m.group(1)) for m in pat.finditer(log_text(node))]


def test_streams_before_close(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(96 * MIB)
    f = bounded(open, str(alice.mnt / "outbox/bob/big.bin"), "wb", 0)
    try:
        write_in_order(f, data, 0, 64 * MIB)
        # The writer pauses mid-file: bob receives meanwhile.
        assert wait_until(lambda: held(bob) >= 48 * MIB, 30), (
            "bob holds %d bytes of the open file\nalice:\n%s\nbob:\n%s" % (
                held(bob), alice.log_tail(), bob.log_tail()))
        assert bob.inbox_files("alice") == {}, "shown before the close"
        assert at_rest(bob) == {}, at_rest(bob)
        # Longer than one keep-alive period: the stream stays up.
        time.sleep(6)
        write_in_order(f, data, 64 * MIB, len(data))
    finally:
        f.close()
    wait_delivered(bob, "alice", "big.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "big.bin")
    assert "streamed" in log_text(bob) and "post/stream" in log_text(bob)
    assert_delivered_once(bob, "big.bin", None, len(data))
    assert wait_until(lambda: not parts(bob), 10), parts(bob)
    assert unnamed_bytes(bob) == 0


def test_write_behind_truncate_unlink(cluster):
    alice, bob = pair(cluster)
    box = alice.mnt / "outbox/bob"
    # A write behind the writer once the stream runs.
    data = bytearray(os.urandom(24 * MIB))
    fd = bounded(os.open, str(box / "behind.bin"), os.O_WRONLY | os.O_CREAT)
    try:
        seen = set(parts(bob))
        bounded(os.pwrite, fd, bytes(data[:16 * MIB]), 0)
        assert wait_until(lambda: new_part(bob, seen, 2 * MIB), 20)
        patch = os.urandom(1000)
        bounded(os.pwrite, fd, patch, 100)
        data[100:1100] = patch
        bounded(os.pwrite, fd, bytes(data[16 * MIB:]), 16 * MIB)
    finally:
        os.close(fd)
    # A truncate into the sealed part.
    tdata = os.urandom(20 * MIB)
    fd = bounded(os.open, str(box / "trunc.bin"), os.O_WRONLY | os.O_CREAT)
    try:
        seen = set(parts(bob))
        bounded(os.pwrite, fd, tdata[:16 * MIB], 0)
        assert wait_until(lambda: new_part(bob, seen, 2 * MIB), 20)
        bounded(os.ftruncate, fd, 5 * MIB + 7)
        bounded(os.pwrite, fd, tdata[5 * MIB + 7:], 5 * MIB + 7)
    finally:
        os.close(fd)
    # Removed before the close.
    fd = bounded(os.open, str(box / "gone.bin"), os.O_WRONLY | os.O_CREAT)
    try:
        seen = set(parts(bob))
        bounded(os.pwrite, fd, os.urandom(16 * MIB), 0)
        assert wait_until(lambda: new_part(bob, seen, 2 * MIB), 20)
        bounded(os.unlink, str(box / "gone.bin"))
    finally:
        os.close(fd)
    wait_delivered(bob, "alice", "behind.bin", sha256_bytes(bytes(data)),
                   size=len(data))
    wait_delivered(bob, "alice", "trunc.bin", sha256_bytes(tdata),
                   size=len(tdata))
    wait_outbox_gone(alice, "bob", "behind.bin")
    wait_outbox_gone(alice, "bob", "trunc.bin")
    time.sleep(2)
    assert bob.inbox_files("alice") == {"behind.bin": len(data),
                                        "trunc.bin": len(tdata)}
    # The streams given up were dropped by bob, not kept for a resume.
    assert wait_until(lambda: not parts(bob), 40), (
        "a stream that never got its trailer is still held: %s" % parts(bob))
    assert "given up by its sender" in log_text(bob)
    assert unnamed_bytes(bob) == 0


def test_sender_killed_mid_stream(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(32 * MIB)
    path = str(alice.mnt / "outbox/bob/cut.bin")
    f = bounded(open, path, "wb", 0)
    try:
        write_in_order(f, data, 0, 24 * MIB, pause=0.05)
        bounded(os.fsync, f.fileno())
        assert wait_until(lambda: held(bob) >= 8 * MIB, 20)
        alice.crash()
    finally:
        try:
            f.close()
        except OSError:
            pass
    # bob ends the stream (the connection ended without a trailer) and
    # keeps the part, invisible, as for a post/blob cut short.
    assert wait_until(lambda: "ended before its trailer" in log_text(bob), 40)
    assert bob.inbox_files("alice") == {}
    assert at_rest(bob) == {}
    assert held(bob) >= 8 * MIB, parts(bob)
    alice.restart()
    # As today for an unclosed spool: held, never shipped.
    time.sleep(4)
    assert bob.inbox_files("alice") == {}
    assert at_rest(bob) == {}
    assert unnamed_bytes(bob) == 0
    # Nobody resumes it: the sweep of unfinished blobs takes it.
    bob.unmount()
    bob.mount("--partial-ttl", "3s", "--refresh", "1")
    assert wait_until(lambda: not parts(bob), 20, interval=0.5), parts(bob)
    assert bob.inbox_files("alice") == {}
    assert at_rest(bob) == {}


def test_receiver_killed_mid_stream(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(40 * MIB)
    f = bounded(open, str(alice.mnt / "outbox/bob/late.bin"), "wb", 0)
    try:
        write_in_order(f, data, 0, 20 * MIB, pause=0.05)
        assert wait_until(lambda: held(bob) >= 12 * MIB, 20)
        before = parts(bob)
        bob.crash()
        assert at_rest(bob) == {}
        write_in_order(f, data, 20 * MIB, len(data), pause=0.05)
    finally:
        f.close()
    time.sleep(1)
    assert at_rest(bob) == {}
    bob.restart()
    wait_delivered(bob, "alice", "late.bin", sha256_bytes(data),
                   size=len(data))
    wait_outbox_gone(alice, "bob", "late.bin")
    assert_delivered_once(bob, "late.bin", None, len(data))
    # Resumed from what bob's part held at the kill, not sent from 0.
    at = resumed_at(bob, "late.bin")
    held_chunks = (max(before.values()) - (256 << 10)) // SEALED_CHUNK
    assert at and at[0] >= held_chunks - 2, (
        "resumed at %s, bob's part held %d chunks\n%s"
        % (at, held_chunks, bob.log_tail()))
    assert wait_until(lambda: not parts(bob), 10), parts(bob)


@pytest.fixture
def short_stall(monkeypatch):
    """Before the cluster fixture copies the environment for the daemons:
    the sender ends a stream after 2 s without a new chunk."""
    monkeypatch.setenv("SNOOPFS_STREAM_STALL", "2")


def test_stalled_stream_ends_and_resumes(short_stall, cluster):
    alice, bob = pair(cluster)
    data = os.urandom(24 * MIB)
    f = bounded(open, str(alice.mnt / "outbox/bob/slow.bin"), "wb", 0)
    try:
        write_in_order(f, data, 0, 12 * MIB)
        assert wait_until(lambda: held(bob) >= 6 * MIB, 20)
        # The writer holds the file and writes nothing.
        assert wait_until(lambda: "no new chunk for 2 s" in log_text(alice),
                          20), alice.log_tail()
        assert wait_until(
            lambda: "ended before its trailer" in log_text(bob), 10)
        kept = held(bob)
        assert kept >= 6 * MIB, parts(bob)
        assert bob.inbox_files("alice") == {}
        write_in_order(f, data, 12 * MIB, len(data))
    finally:
        f.close()
    wait_delivered(bob, "alice", "slow.bin", sha256_bytes(data),
                   size=len(data))
    wait_outbox_gone(alice, "bob", "slow.bin")
    assert_delivered_once(bob, "slow.bin", None, len(data))
    at = resumed_at(bob, "slow.bin")
    assert at and at[0] >= (kept - (256 << 10)) // SEALED_CHUNK - 2, (
        at, kept, bob.log_tail())
    assert wait_until(lambda: not parts(bob), 10), parts(bob)


def test_relayed_file_streams_to_first_recipient(cluster):
    cluster.init_ca("ca")
    alice = cluster.add_node("alice")
    names = ("bob", "carol", "dave")
    nodes = {n: cluster.add_node(n) for n in names}
    cluster.wait_all_know_all()
    folder = ",".join(names)
    box = alice.mnt / "outbox" / folder
    if not box.is_dir():
        os.mkdir(str(box))
    data = os.urandom(24 * MIB)
    f = bounded(open, str(box / "many.bin"), "wb", 0)
    try:
        write_in_order(f, data, 0, 16 * MIB, pause=0.05)
        # The first recipient receives while it is written; the others
        # wait for their relay.
        assert wait_until(lambda: held(nodes["bob"]) >= 4 * MIB, 20)
        assert not parts(nodes["carol"]) and not parts(nodes["dave"])
        write_in_order(f, data, 16 * MIB, len(data), pause=0.05)
    finally:
        f.close()
    for n in names:
        wait_delivered(nodes[n], "alice", "many.bin", sha256_bytes(data),
                       size=len(data), timeout=DELIVERY_TIMEOUT + 60)
    wait_outbox_gone(alice, folder, "many.bin", timeout=DELIVERY_TIMEOUT + 60)
    assert "streamed" in log_text(nodes["bob"])
    assert "forwarded 'many.bin'" in log_text(nodes["bob"])
    for n in names:
        assert_delivered_once(nodes[n], "many.bin", None, len(data))
        assert wait_until(lambda: not parts(nodes[n]), 10), parts(nodes[n])


def test_stream_off(cluster):
    """`stream = off` in alice's config file (the node's setting, which
    node.conf keeps for her restarts): nothing goes before the close, the
    file goes after it as post/blob."""
    cluster.init_ca("ca")
    conf = cluster.base / "alice-nostream.conf"
    conf.write_text("stream = off\n")
    alice = cluster.add_node("alice", extra=("--config", str(conf)))
    assert "stream=off" in (alice.state / "node.conf").read_text()
    bob = cluster.add_node("bob")
    cluster.wait_all_know_all()
    assert wait_until(lambda: alice.exists("outbox/bob"), 15), (
        "alice has no outbox/bob: %s" % alice.listdir("outbox"))
    data = os.urandom(16 * MIB)
    f = bounded(open, str(alice.mnt / "outbox/bob/plain.bin"), "wb", 0)
    try:
        write_in_order(f, data, 0, 12 * MIB)
        time.sleep(3)
        assert not parts(bob), parts(bob)
        write_in_order(f, data, 12 * MIB, len(data))
    finally:
        f.close()
    wait_delivered(bob, "alice", "plain.bin", sha256_bytes(data),
                   size=len(data))
    assert "post/stream" not in log_text(bob)
    assert "streaming" not in log_text(alice)
