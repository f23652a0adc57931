"""The pool of recycled files (src/base/filepool.h): the records and sealed
blobs of delivered files are moved to STATE/free/ and taken back for new
ones instead of being unlinked and created again.

Black-box: bursts of small files arrive byte for byte exactly once while
their records and blobs reuse the inodes of files delivered before them,
also across a kill -9 right after a burst of fsynced closes, and what the
pool held before the kill is not left behind after the restart.

Every test runs its own cluster (CA, alice, bob); alice sends to bob.
"""

import os
import time

from snoopnodes import (DELIVERY_TIMEOUT, bounded, sha256_bytes, wait_until)
from test_delivery_faults import pair

SMALL = 1024


def burst(node, folder, n, tag, sync=False):
    """N small files of random content into NODE's outbox/bob/FOLDER, each
    one open/write/(fsync)/close: {name: sha256}."""
    d = node.mnt / "outbox/bob" / folder
    bounded(os.mkdir, str(d))
    want = {}

    def write_all():
        for i in range(n):
            name = "%s%04d" % (tag, i)
            data = os.urandom(SMALL)
            with open(str(d / name), "wb") as f:
                f.write(data)
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            want[name] = sha256_bytes(data)
    bounded(write_all, timeout=120, what="burst %s" % folder)
    return want


def arrived(bob, folder, want):
    """Waits until bob's inbox/alice/FOLDER holds exactly WANT (names and
    content); fails with what is missing or wrong."""
    rel = "inbox/alice/%s" % folder

    def same():
        files = bob.files(rel)
        return set(files) == set(want) and all(
            s == SMALL for s in files.values())
    ok = wait_until(same, DELIVERY_TIMEOUT + len(want) * 0.05, 0.1)
    files = bob.files(rel)
    assert ok, "%s: missing %s, extra %s" % (
        rel, sorted(set(want) - set(files))[:5],
        sorted(set(files) - set(want))[:5])
    for name, h in want.items():
        assert bob.hash("%s/%s" % (rel, name)) == h, "%s/%s differs" % (rel, name)


def received_counts(bob, folder, names):
    """How often bob's log says it stored each of NAMES under FOLDER."""
    log = bob.log.read_text(errors="replace")
    return {n: log.count("received '%s/%s' from 'alice'" % (folder, n))
            for n in names}


def pool(node):
    d = node.state / "free"
    return sorted(os.listdir(str(d))) if d.is_dir() else []


def settled(alice):
    """alice keeps no job record and no sealed blob once all is delivered."""
    def empty():
        return not any(
            os.listdir(str(alice.state / s)) for s in ("jobs", "sealed"))
    assert wait_until(empty, DELIVERY_TIMEOUT), (
        "left on alice: jobs %s sealed %s" % (
            os.listdir(str(alice.state / "jobs")),
            os.listdir(str(alice.state / "sealed"))))


def test_bursts_reuse_inodes_exactly_once_across_kill(cluster):
    alice, bob = pair(cluster)

    # 1. A burst fills the pool: delivered records and blobs go there.
    first = burst(alice, "b1", 150, "a")
    arrived(bob, "b1", first)
    settled(alice)
    before = pool(alice)
    assert before, "nothing was recycled into STATE/free"
    for name in before:
        st = os.lstat(str(alice.state / "free" / name))
        assert st.st_mode & 0o777 == 0o600 and st.st_size == 0

    # 2. Fsynced closes taking pooled inodes, kill -9 right after the last
    # close: each arrives once, whole, after the restart.
    second = burst(alice, "b2", 120, "b", sync=True)
    alice.crash()
    alice.restart()
    # What the pool held before the kill was removed at start (it may be
    # refilled since, by deliveries after the restart, from 0).
    arrived(bob, "b2", second)
    settled(alice)
    time.sleep(1)
    counts = received_counts(bob, "b2", list(second))
    twice = {n: c for n, c in counts.items() if c != 1}
    assert not twice, "received not exactly once: %s" % twice

    # 3. After the restart the pool works again and content stays right.
    third = burst(alice, "b3", 100, "c")
    arrived(bob, "b3", third)
    settled(alice)
    assert pool(alice), "the pool is not used after a restart"
    counts = received_counts(bob, "b3", list(third))
    assert all(c == 1 for c in counts.values()), counts


def emptied(node):
    """What NODE's pool holds, each checked empty and 0600: a pooled file
    keeps no byte of what it held (it is emptied in the pool)."""
    names = pool(node)
    for name in names:
        st = os.lstat(str(node.state / "free" / name))
        assert st.st_mode & 0o777 == 0o600, (name, oct(st.st_mode))
        assert st.st_size == 0 and st.st_blocks == 0, (name, st.st_size)
    return names


def test_receiver_recycles_removed_inbox_files_and_open_ones_stay(cluster):
    alice, bob = pair(cluster)
    first = burst(alice, "r1", 60, "a")
    arrived(bob, "r1", first)
    settled(alice)
    inbox = bob.mnt / "inbox/alice/r1"

    # A file open for reading while it is removed stays readable, whole,
    # and is not pooled (it would be emptied under its reader).
    held = "a0000"
    before = len(emptied(bob))
    with open(str(inbox / held), "rb") as f:
        head = f.read(100)
        bounded(os.unlink, str(inbox / held))
        assert len(emptied(bob)) == before, "an open file was pooled"
        rest = f.read()
    assert sha256_bytes(head + rest) == first.pop(held)

    # rm of the others gives their inodes to bob's pool, emptied.
    for name in first:
        bounded(os.unlink, str(inbox / name))
    assert not os.path.exists(str(bob.state / "inbox/alice/r1" / "a0001"))
    pooled = emptied(bob)
    assert len(pooled) >= before + len(first) - 1, (
        "bob's pool did not take the removed files: %d" % len(pooled))

    # The next burst's parts take them: the pool shrinks, and every file
    # arrives whole (no byte of a pooled file shows).
    second = burst(alice, "r2", 40, "b")
    arrived(bob, "r2", second)
    settled(alice)
    assert len(emptied(bob)) <= len(pooled) - 40 + 1, (
        "bob's parts did not take pooled inodes")
    counts = received_counts(bob, "r2", list(second))
    assert all(c == 1 for c in counts.values()), counts


def test_receiver_stocks_an_inode_for_the_next_file_alone(cluster):
    """Once a batch's receipt is sent, bob makes as many empty files in
    its pool as the batch had: the next file alone takes one instead of
    waiting for a new inode on its way to the inbox."""
    alice, bob = pair(cluster)
    # A burst first, so that alice knows bob takes batches and a file
    # alone then goes as a batch of one.
    first = burst(alice, "s1", 40, "a")
    arrived(bob, "s1", first)
    settled(alice)
    bounded(os.mkdir, str(alice.mnt / "outbox/bob/s2"))
    for i in range(3):
        name = "one%d" % i
        stocked = {os.lstat(str(bob.state / "free" / n)).st_ino
                   for n in emptied(bob)}
        assert stocked, "bob's pool holds nothing after a batch"
        data = os.urandom(SMALL)
        (alice.mnt / "outbox/bob/s2" / name).write_bytes(data)
        arrived_one = lambda: bob.exists("inbox/alice/s2/%s" % name)
        assert wait_until(arrived_one, DELIVERY_TIMEOUT), bob.log_tail()
        assert bob.hash("inbox/alice/s2/%s" % name) == sha256_bytes(data)
        ino = os.lstat(str(bob.state / "inbox/alice/s2" / name)).st_ino
        assert ino in stocked, "the file alone did not take a pooled inode"
        # Stocked again once its receipt is sent.
        assert wait_until(lambda: emptied(bob), 10), "not stocked again"
    log = bob.log.read_text(errors="replace")
    assert log.count("in a batch of one)") >= 3, bob.log_tail()
    counts = received_counts(bob, "s2", ["one0", "one1", "one2"])
    assert all(c == 1 for c in counts.values()), counts
