"""Seal once (issue 21): a file written into outbox/ in order is sealed
ahead, chunk by chunk, into the blob that ships (STATE/sealed/ID.blob),
and those chunks are not also encrypted into the spool
(STATE/outbox/PEER/NAME): the sender keeps one encrypted copy at rest.

* test_in_order_keeps_one_copy: while a file is written in order the spool
  stays a few KiB on disk however much is written, STATE holds about one
  copy, and reads of the open file (from another descriptor) return the
  bytes written, from the sealed copy; the file arrives whole.
* test_writes_behind_truncate_random: writes behind the writer, a truncate
  into what was sealed, a file written in random order, and one rewritten
  with O_TRUNC while still open all arrive with the right bytes.
* test_killed_after_close_before_seal_ships_once: a file closed under an
  in-progress name (so its spool and sealed-ahead blob are both at rest),
  the sender killed -9, the file renamed to a final name in STATE: after
  the restart it ships from the blob it recorded, exactly once, whole.
* test_killed_after_close_delivers_once: kill -9 after close and before
  delivery (bob away): delivered once after the restart.
* test_killed_mid_write_ships_nothing_and_keeps_data: kill -9 while a file
  is written in order and fsynced half-way: nothing ships, the blob goes,
  and the held file still reads back the synced half (its chunks were
  brought back from the blob into the spool at start).
* test_unlink_before_close_removes_blob: a file removed while written
  takes its sealed-ahead blob along.
* test_closed_file_whose_sealed_part_missed_the_disk_is_held: a closed
  spool whose blob lost its tail (a power cut) is held, never shipped.
* test_mmap_writer: a program that mmaps (MAP_SHARED, PROT_WRITE) a file it
  writes in outbox/ works and the file arrives whole.
"""

import mmap
import os
import random
import time

from snoopnodes import (bounded, sha256_bytes, tree_files, wait_delivered,
                        wait_outbox_gone, wait_until)
from test_delivery_faults import assert_delivered_once, pair

MIB = 1 << 20
CHUNK = 64 << 10


def disk_bytes(root):
    """Bytes the files under ROOT take on disk (st_blocks), not st_size."""
    total = 0
    for dirpath, _, names in os.walk(str(root)):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def test_in_order_keeps_one_copy(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(48 * MIB)
    path = str(alice.mnt / "outbox/bob/big.bin")
    spool = alice.state / "outbox" / "bob" / "big.bin"
    f = bounded(open, path, "wb", 0)
    try:
        for i in range(0, 32 * MIB, MIB):
            bounded(f.write, data[i:i + MIB])
        # The data reaches the daemon, and the record the header.
        bounded(os.fsync, f.fileno())
        spool_disk = os.lstat(spool).st_blocks * 512
        sealed_disk = disk_bytes(alice.state / "sealed")
        assert spool_disk <= 256 << 10, (
            "the spool takes %d bytes on disk after 32 MiB in order: the "
            "data is encrypted into it as well as into the sealed copy"
            % spool_disk)
        assert sealed_disk >= 31 * MIB, "sealed copy: %d bytes" % sealed_disk
        total = disk_bytes(alice.state)
        assert total <= 32 * MIB * 1.15 + 2 * MIB, (
            "STATE holds %d bytes for 32 MiB written: more than one copy; "
            "%s" % (total, tree_files(alice.state / "sealed")))
        # Reads while the file is open: from the sealed copy (the pages
        # cp left in the kernel's cache are dropped first, so the reads
        # reach the daemon).
        with bounded(open, path, "rb") as r:
            os.posix_fadvise(r.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            for off in (0, 5 * CHUNK - 10, 17 * MIB + 3, 32 * MIB - 100):
                r.seek(off)
                want = data[off:min(off + 300, 32 * MIB)]
                assert bounded(r.read, len(want)) == want, off
        for i in range(32 * MIB, len(data), MIB):
            bounded(f.write, data[i:i + MIB])
    finally:
        f.close()
    wait_delivered(bob, "alice", "big.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "big.bin")


def write_model(path, ops):
    """Applies OPS ((offset, bytes) writes, or ('trunc', n)) to PATH
    through one descriptor and to a bytearray; returns the bytearray."""
    model = bytearray()
    fd = bounded(os.open, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for op in ops:
            if op[0] == "trunc":
                bounded(os.ftruncate, fd, op[1])
                del model[op[1]:]
                model.extend(b"\0" * (op[1] - len(model)))
            else:
                off, b = op
                bounded(os.pwrite, fd, b, off)
                if off > len(model):
                    model.extend(b"\0" * (off - len(model)))
                model[off:off + len(b)] = b
    finally:
        os.close(fd)
    return bytes(model)


def test_writes_behind_truncate_random(cluster):
    alice, bob = pair(cluster)
    rnd = random.Random(21)
    box = alice.mnt / "outbox/bob"
    seq = os.urandom(6 * MIB)
    cases = {}
    # In order, then back into what is sealed, then on.
    cases["behind.bin"] = [(i, seq[i:i + CHUNK * 2])
                           for i in range(0, 3 * MIB, CHUNK * 2)] + [
        (70000, b"behind the writer"), (MIB + 5, os.urandom(CHUNK * 3))] + [
        (i, seq[i:i + CHUNK * 2]) for i in range(3 * MIB, 6 * MIB, CHUNK * 2)]
    # In order, then a truncate into the sealed part, then more.
    cases["trunc.bin"] = [(i, seq[i:i + MIB]) for i in range(0, 4 * MIB, MIB)] + [
        ("trunc", 2 * MIB + 12345), (2 * MIB + 12345, os.urandom(MIB)),
        ("trunc", 5 * MIB)]
    # Random order.
    pieces = [(i, os.urandom(CHUNK + 17)) for i in range(0, 4 * MIB, CHUNK + 17)]
    rnd.shuffle(pieces)
    cases["random.bin"] = pieces
    # Emptied while open (what cp over an open file does), then again.
    cases["again.bin"] = [(i, seq[i:i + MIB]) for i in range(0, 3 * MIB, MIB)] + [
        ("trunc", 0)] + [(i, seq[i + 7:i + 7 + MIB]) for i in range(0, 2 * MIB, MIB)]
    want = {}
    for name, ops in cases.items():
        want[name] = write_model(str(box / name), ops)
    for name, data in want.items():
        wait_delivered(bob, "alice", name, sha256_bytes(data), size=len(data))
    for name in want:
        wait_outbox_gone(alice, "bob", name)


def test_killed_after_close_before_seal_ships_once(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(8 * MIB + 4321)
    alice.write_bytes("outbox/bob/.late.tmp", data)
    box = alice.state / "outbox" / "bob"
    assert wait_until(lambda: (box / ".late.tmp").exists(), 5)
    # Closed under an in-progress name: held, its chunks in the blob.
    assert disk_bytes(alice.state / "sealed") >= 7 * MIB
    assert os.lstat(box / ".late.tmp").st_blocks * 512 <= 256 << 10
    alice.crash()
    os.rename(box / ".late.tmp", box / "late.bin")
    alice.restart()
    wait_delivered(bob, "alice", "late.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "late.bin")
    assert_delivered_once(bob, "late.bin", sha256_bytes(data), len(data))
    assert not tree_files(alice.state / "sealed"), tree_files(alice.state / "sealed")


def test_killed_after_close_delivers_once(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(6 * MIB + 1)
    bob.unmount()
    alice.write_bytes("outbox/bob/pending.bin", data)
    assert wait_until(
        lambda: alice.getxattr("outbox/bob/pending.bin") != "writing", 10)
    alice.crash()
    alice.restart()
    bob.restart()
    wait_delivered(bob, "alice", "pending.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "pending.bin")
    assert_delivered_once(bob, "pending.bin", sha256_bytes(data), len(data))


def test_killed_mid_write_ships_nothing_and_keeps_data(cluster):
    alice, bob = pair(cluster)
    data = os.urandom(6 * MIB)
    path = str(alice.mnt / "outbox/bob/half.bin")
    f = bounded(open, path, "wb", 0)
    try:
        for i in range(0, 3 * MIB, MIB):
            bounded(f.write, data[i:i + MIB])
        bounded(os.fsync, f.fileno())
        assert tree_files(alice.state / "sealed"), "nothing sealed ahead"
        alice.crash()
    finally:
        try:
            f.close()
        except OSError:
            pass
    alice.restart()
    time.sleep(4)
    assert not bob.inbox_files("alice"), "a cut file was shipped"
    assert not tree_files(alice.state / "sealed"), (
        "the blob of a held file stayed: %s" % tree_files(alice.state / "sealed"))
    state = alice.getxattr("outbox/bob/half.bin")
    assert state.startswith("held:") and "not written whole" in state, state
    # What was synced is still there: brought back into the spool.
    assert alice.read_bytes("outbox/bob/half.bin") == data[:3 * MIB]
    alice.write_bytes("outbox/bob/half.bin", data)
    wait_delivered(bob, "alice", "half.bin", sha256_bytes(data), size=len(data))


def test_unlink_before_close_removes_blob(cluster):
    alice, bob = pair(cluster)
    path = str(alice.mnt / "outbox/bob/gone.bin")
    f = bounded(open, path, "wb", 0)
    try:
        for _ in range(4):
            bounded(f.write, os.urandom(MIB))
        bounded(os.fsync, f.fileno())
        assert tree_files(alice.state / "sealed")
        bounded(os.unlink, path)
    finally:
        f.close()
    assert wait_until(lambda: not tree_files(alice.state / "sealed"), 10), (
        tree_files(alice.state / "sealed"))
    time.sleep(2)
    assert not bob.inbox_files("alice")


def test_mmap_writer(cluster):
    """A program that maps the file it writes (MAP_SHARED, PROT_WRITE)."""
    alice, bob = pair(cluster)
    size = 3 * MIB + 100
    data = os.urandom(size)
    path = str(alice.mnt / "outbox/bob/mapped.bin")
    fd = bounded(os.open, path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        bounded(os.ftruncate, fd, size)
        m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m[:] = data
        m.flush()
        assert m[1000:2000] == data[1000:2000]
        m.close()
    finally:
        os.close(fd)
    wait_delivered(bob, "alice", "mapped.bin", sha256_bytes(data), size=size)


def test_closed_file_whose_sealed_part_missed_the_disk_is_held(cluster):
    """A power cut after a close(2) that nothing synced can leave the
    spool's header (closed, k chunks in blob ID) on disk while the blob's
    tail is not. Simulated on an unmounted node: a closed spool under an
    in-progress name is renamed in STATE to a final name and its blob cut
    by one sealed chunk. At the next mount it is not shipped (never part of
    a file); written again, it ships whole."""
    alice, bob = pair(cluster)
    data = os.urandom(2 * MIB + 777)
    alice.write_bytes("outbox/bob/.cut.tmp", data)
    alice.unmount()
    box = alice.state / "outbox" / "bob"
    os.rename(box / ".cut.tmp", box / "cut.bin")
    blobs = list((alice.state / "sealed").iterdir())
    assert len(blobs) == 1, blobs
    os.truncate(blobs[0], os.path.getsize(blobs[0]) - (CHUNK + 16))
    alice.mount()
    time.sleep(4)
    assert "cut.bin" not in bob.inbox_files("alice"), (
        "a file whose sealed part never reached the disk was shipped:\n%s"
        % alice.log_tail())
    state = alice.getxattr("outbox/bob/cut.bin")
    assert state.startswith("held:"), state
    alice.write_bytes("outbox/bob/cut.bin", data)
    wait_delivered(bob, "alice", "cut.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "cut.bin")
