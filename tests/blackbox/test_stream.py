"""Streaming while writing (issue 21, post/stream): with `stream = on` a
file written in order into outbox/PEER/ starts on its way before the close
(the chunks sealed ahead go as they are sealed) and is closed by a signed
trailer; the receiver keeps what arrives in an unnamed file and shows the
file only once the trailer verified. A writer that goes back, truncates or
removes the file, and a daemon killed mid-stream, fall back to the plain
post/blob path: exactly once in every case.

* test_streams_before_close: while the writer pauses mid-file, bob holds
  (in an unnamed file) most of what was written, nothing shows in his
  inbox; after the close the file arrives whole, and was streamed.
* test_write_behind_truncate_unlink: a write behind the writer, a truncate
  into the sealed part, an unlink before the close: the right content once
  (nothing for the unlink), nothing left at bob.
* test_sender_killed_mid_stream: kill -9 of alice while streaming: nothing
  at bob, ever; after the restart the unclosed file is held as today.
* test_receiver_killed_mid_stream: kill -9 of bob while streaming: after
  his restart the file still arrives, once.
"""

import os
import time

import pytest

from snoopnodes import (bounded, sha256_bytes, wait_delivered,
                        wait_outbox_gone, wait_until)
from test_delivery_faults import assert_delivered_once, at_rest

MIB = 1 << 20


def pair(cluster):
    """alice (streaming on, from `stream = on` in her config file, which
    node.conf keeps for her restarts) and bob."""
    cluster.init_ca("ca")
    conf = cluster.base / "alice-stream.conf"
    conf.write_text("stream = on\n")
    alice = cluster.add_node("alice", extra=("--config", str(conf)))
    assert "stream=on" in (alice.state / "node.conf").read_text()
    bob = cluster.add_node("bob")
    cluster.wait_all_know_all()
    assert wait_until(lambda: alice.exists("outbox/bob"), 15), (
        "alice has no outbox/bob: %s" % alice.listdir("outbox"))
    return alice, bob


def unnamed_bytes(node):
    """Bytes in files NODE's daemon holds open under STATE/incoming that
    have no name (O_TMPFILE: a stream not yet closed by its trailer)."""
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


def write_in_order(f, data, start, end, step=MIB):
    for i in range(start, end, step):
        bounded(f.write, data[i:min(i + step, end)])


def log_text(node):
    return node.log.read_text(errors="replace")


def test_streams_before_close(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(96 * MIB)
    f = bounded(open, str(alice.mnt / "outbox/bob/big.bin"), "wb", 0)
    try:
        write_in_order(f, data, 0, 64 * MIB)
        # The writer pauses mid-file: bob receives meanwhile.
        assert wait_until(lambda: unnamed_bytes(bob) >= 48 * MIB, 30), (
            "bob holds %d bytes of the open file\nalice:\n%s\nbob:\n%s" % (
                unnamed_bytes(bob), alice.log_tail(), bob.log_tail()))
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
    assert unnamed_bytes(bob) == 0


def test_write_behind_truncate_unlink(cluster):
    alice, bob = pair(cluster)
    box = alice.mnt / "outbox/bob"
    # A write behind the writer once the stream runs.
    data = bytearray(os.urandom(24 * MIB))
    fd = bounded(os.open, str(box / "behind.bin"), os.O_WRONLY | os.O_CREAT)
    try:
        bounded(os.pwrite, fd, bytes(data[:16 * MIB]), 0)
        assert wait_until(lambda: unnamed_bytes(bob) >= 2 * MIB, 20)
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
        bounded(os.pwrite, fd, tdata[:16 * MIB], 0)
        assert wait_until(lambda: unnamed_bytes(bob) >= 2 * MIB, 20)
        bounded(os.ftruncate, fd, 5 * MIB + 7)
        bounded(os.pwrite, fd, tdata[5 * MIB + 7:], 5 * MIB + 7)
    finally:
        os.close(fd)
    # Removed before the close.
    fd = bounded(os.open, str(box / "gone.bin"), os.O_WRONLY | os.O_CREAT)
    try:
        bounded(os.pwrite, fd, os.urandom(16 * MIB), 0)
        assert wait_until(lambda: unnamed_bytes(bob) >= 2 * MIB, 20)
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
    assert wait_until(lambda: unnamed_bytes(bob) == 0, 40), (
        "a stream that never got its trailer is still held")


def test_sender_killed_mid_stream(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(32 * MIB)
    path = str(alice.mnt / "outbox/bob/cut.bin")
    f = bounded(open, path, "wb", 0)
    try:
        write_in_order(f, data, 0, 24 * MIB)
        bounded(os.fsync, f.fileno())
        assert wait_until(lambda: unnamed_bytes(bob) >= 8 * MIB, 20)
        alice.crash()
    finally:
        try:
            f.close()
        except OSError:
            pass
    # bob drops the stream: the connection ended without a trailer.
    assert wait_until(lambda: unnamed_bytes(bob) == 0, 20)
    assert bob.inbox_files("alice") == {}
    assert at_rest(bob) == {}
    alice.restart()
    # As today for an unclosed spool: held, never shipped.
    time.sleep(4)
    assert bob.inbox_files("alice") == {}
    assert at_rest(bob) == {}
    assert unnamed_bytes(bob) == 0


def test_receiver_killed_mid_stream(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(32 * MIB)
    f = bounded(open, str(alice.mnt / "outbox/bob/late.bin"), "wb", 0)
    try:
        write_in_order(f, data, 0, 16 * MIB)
        assert wait_until(lambda: unnamed_bytes(bob) >= 4 * MIB, 20)
        bob.crash()
        write_in_order(f, data, 16 * MIB, len(data))
    finally:
        f.close()
    time.sleep(1)
    assert at_rest(bob) == {}
    bob.restart()
    wait_delivered(bob, "alice", "late.bin", sha256_bytes(data),
                   size=len(data))
    wait_outbox_gone(alice, "bob", "late.bin")
    assert_delivered_once(bob, "late.bin", None, len(data))
