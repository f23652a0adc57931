"""File delivery when things go wrong: a receiver that is away, kill -9 of
either side (in the middle of a 1 GiB transfer, too, which then resumes),
and a receiver whose disk is full.

Every test runs its own cluster (CA, alice, bob); alice sends to bob.
"""

import os
import re
import time

from snoopnodes import (BIG_TIMEOUT, DELIVERY_TIMEOUT, InboxWatcher, bounded,
                        node_on_tmpfs, run_tool, sha256_bytes, tmpfs_resize,
                        tree_files, wait_delivered, wait_outbox_gone, wait_until)


def pair(cluster, stream=True):
    """alice and bob; with STREAM False alice sends nothing before a close
    (--stream off, which her node.conf keeps for her restarts)."""
    cluster.init_ca("ca")
    alice = cluster.add_node("alice",
                             extra=() if stream else ("--stream", "off"))
    bob = cluster.add_node("bob")
    cluster.wait_all_know_all()
    assert wait_until(lambda: alice.exists("outbox/bob"), 15), (
        "alice has no outbox/bob: %s" % alice.listdir("outbox"))
    return alice, bob


def cp(src, dst, timeout=120):
    r = run_tool(["cp", src, dst], timeout=timeout)
    assert r.returncode == 0, "cp %s %s: %s" % (src, dst, r.stderr)


def local_file(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def at_rest(node, sender="alice"):
    """{path: size} of what NODE keeps in STATE/inbox/SENDER."""
    return tree_files(node.state / "inbox" / sender)


def parts(node):
    """{path: size} of the partial transfers under NODE's STATE/incoming."""
    return {p: s for p, s in tree_files(node.state / "incoming").items()
            if p.endswith(".part")}


def assert_delivered_once(bob, name, data_sha, size, settle=2.0):
    """inbox/alice holds exactly NAME, and it stays the same for SETTLE s."""
    files = bob.inbox_files("alice")
    assert files == {name: size}, "bob's inbox/alice: %s" % files
    st1 = bounded(os.stat, str(bob.mnt / "inbox/alice" / name))
    time.sleep(settle)
    assert bob.inbox_files("alice") == {name: size}
    st2 = bounded(os.stat, str(bob.mnt / "inbox/alice" / name))
    assert (st1.st_ino, st1.st_mtime_ns) == (st2.st_ino, st2.st_mtime_ns), (
        "the file was delivered again")
    assert list(at_rest(bob)) == [name], at_rest(bob)


def test_receiver_down_during_cp(cluster, tmp_path):
    alice, bob = pair(cluster)
    data = os.urandom(300_000)
    src = local_file(tmp_path, "f.bin", data)
    bob.unmount()
    cp(src, alice.mnt / "outbox/bob/while-away.bin")
    time.sleep(2)
    assert alice.exists("outbox/bob/while-away.bin"), "pending file not listed"
    assert not at_rest(bob), "bob got something while unmounted"
    bob.restart()
    wait_delivered(bob, "alice", "while-away.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "while-away.bin")
    assert_delivered_once(bob, "while-away.bin", sha256_bytes(data), len(data))


def test_pending_survives_sender_unmount(cluster, tmp_path):
    alice, bob = pair(cluster)
    data = os.urandom(100_000)
    src = local_file(tmp_path, "f.bin", data)
    bob.unmount()
    cp(src, alice.mnt / "outbox/bob/survives.bin")
    alice.unmount()
    bob.restart()
    time.sleep(2)
    assert not bob.inbox_files("alice"), "delivered while the sender was unmounted?"
    alice.restart()
    assert alice.exists("outbox/bob/survives.bin") or bob.inbox_files("alice"), (
        "the pending file is gone from the outbox after a remount")
    wait_delivered(bob, "alice", "survives.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "survives.bin")


def test_sender_killed_while_pending(cluster, tmp_path):
    alice, bob = pair(cluster)
    data = os.urandom(200_000)
    src = local_file(tmp_path, "f.bin", data)
    bob.unmount()
    cp(src, alice.mnt / "outbox/bob/crash.bin")
    alice.crash()
    bob.restart()
    alice.restart()
    wait_delivered(bob, "alice", "crash.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "crash.bin")
    assert_delivered_once(bob, "crash.bin", sha256_bytes(data), len(data))


def test_sender_killed_right_after_cp(cluster, tmp_path):
    alice, bob = pair(cluster)
    data = os.urandom(8 << 20)
    src = local_file(tmp_path, "f.bin", data)
    cp(src, alice.mnt / "outbox/bob/crash2.bin")
    alice.crash()          # most likely while sealing or sending
    alice.restart()
    wait_delivered(bob, "alice", "crash2.bin", sha256_bytes(data), size=len(data))
    wait_outbox_gone(alice, "bob", "crash2.bin")
    assert_delivered_once(bob, "crash2.bin", sha256_bytes(data), len(data))


SEALED_CHUNK = (64 << 10) + 16     # a chunk on the wire: 64 KiB and its tag
RESUMED = re.compile(r"post/blob 'big\.bin' from 'alice': resuming at chunk "
                     r"(\d+) of (\d+)")


def read_so_far(pid):
    """What process PID has read with read()/pread() (rchar of /proc/PID/io):
    for a sender that has sealed its file, chiefly the sealed copy, chunk by
    chunk as it sends it."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/%d/io" % pid)


def wait_part(bob, big_file, at_least, seen):
    """Waits until BOB has a part file of AT_LEAST bytes, short of whole;
    what it saw goes into SEEN."""
    def grown():
        p = parts(bob)
        seen.update(p)
        return any(at_least <= s < big_file.size for s in p.values())
    assert wait_until(grown, BIG_TIMEOUT, interval=0.01), (
        "no STATE/incoming/*.part of %d bytes or more on bob (seen %s, "
        "inbox %s)\nlog:\n%s" % (at_least, seen, at_rest(bob), bob.log_tail()))


def assert_resumed(bob, before):
    """BOB's first resume went on from the chunks its part held at the kill
    (BEFORE, its parts then; a few chunks may have been cut off torn)."""
    resumed = RESUMED.findall(bob.log.read_text(errors="replace"))
    part = max(before.values())
    assert resumed and int(resumed[0][0]) >= part // SEALED_CHUNK - 5, (
        "bob resumed at chunks %s, its part held %d bytes before the kill"
        % (resumed, part))


def test_receiver_killed_mid_transfer(cluster, big_file):
    """kill -9 of the receiver a third of the way into 1 GiB: no partial file
    is ever visible, the file arrives once, and the new connection (with a
    freshly signed request) goes on from the chunks the receiver verified:
    the sender reads its sealed copy about once in all, and the receiver
    says where it resumed. Without streaming: a stream may finish with the
    close, leaving nothing to kill it in; test_stream.py kills either side
    while a file streams."""
    alice, bob = pair(cluster, stream=False)
    sender = alice.read_pid()
    with InboxWatcher(bob, "alice", interval=0.05) as watch:
        cp(big_file.path, alice.mnt / "outbox/bob/big.bin", timeout=BIG_TIMEOUT)
        seen = {}
        wait_part(bob, big_file, 1, seen)
        # Sealed by now: from here on the sender reads to send.
        start = read_so_far(sender)
        wait_part(bob, big_file, big_file.size // 3, seen)
        before = parts(bob)
        bob.crash()
        sent_before = read_so_far(sender) - start
        assert not at_rest(bob), "bob kept a file in STATE/inbox before it was whole"
        bob.restart()
        wait_delivered(bob, "alice", "big.bin", big_file.sha256, size=big_file.size,
                       timeout=BIG_TIMEOUT, hash_timeout=BIG_TIMEOUT)
    assert watch.polls > 10
    wrong = {p: sorted(s) for p, s in watch.seen.items()
             if p != "big.bin" or s != {big_file.size}}
    assert not wrong, ("a partial or stray file was visible in bob's inbox "
                       "(sizes seen %s; final %d); .part before the kill: %s"
                       % (wrong, big_file.size, before))
    wait_outbox_gone(alice, "bob", "big.bin", timeout=BIG_TIMEOUT)
    read = read_so_far(sender) - start
    print("receiver killed at %.2fx: the sender read %.3fx the file in all"
          % (sent_before / big_file.size, read / big_file.size))
    # Sent again from the start, it would read 1.33x the file or more.
    assert read <= 1.1 * big_file.size, (
        "the sender read %.2fx the file to deliver it (%.2fx before the kill; "
        "part before the kill %s): the transfer did not resume\nbob's log:\n%s"
        % (read / big_file.size, sent_before / big_file.size, before,
           bob.log_tail()))
    assert_resumed(bob, before)
    assert_delivered_once(bob, "big.bin", big_file.sha256, big_file.size)
    assert wait_until(lambda: not parts(bob), 10), "partial left behind: %s" % parts(bob)


def test_sender_killed_mid_transfer_resumes(cluster, big_file):
    """kill -9 of the sender a third of the way into 1 GiB: restarted, it
    asks again from its job record (same blob id, hash and wrapped keys, in
    a newly signed request), and the receiver goes on from the chunks it
    holds: the new sender process reads little more than the rest of its
    sealed copy. Without streaming, as above."""
    alice, bob = pair(cluster, stream=False)
    cp(big_file.path, alice.mnt / "outbox/bob/big.bin", timeout=BIG_TIMEOUT)
    seen = {}
    wait_part(bob, big_file, big_file.size // 3, seen)
    before = parts(bob)
    alice.crash()
    alice.restart()
    sender = alice.read_pid()
    wait_delivered(bob, "alice", "big.bin", big_file.sha256, size=big_file.size,
                   timeout=BIG_TIMEOUT, hash_timeout=BIG_TIMEOUT)
    wait_outbox_gone(alice, "bob", "big.bin", timeout=BIG_TIMEOUT)
    read = read_so_far(sender)
    rest = big_file.size - max(before.values())
    print("sender killed at %.2fx: then it read %.3fx the file"
          % (1 - rest / big_file.size, read / big_file.size))
    assert read <= rest + 0.1 * big_file.size, (
        "the restarted sender read %.2fx the file, %.2fx was left to send: "
        "the transfer did not resume\nbob's log:\n%s"
        % (read / big_file.size, rest / big_file.size, bob.log_tail()))
    assert_resumed(bob, before)
    assert_delivered_once(bob, "big.bin", big_file.sha256, big_file.size)
    assert wait_until(lambda: not parts(bob), 10), "partial left behind: %s" % parts(bob)


# --- a receiver whose disk is full ----------------------------------------------

def test_receiver_disk_full(cluster, tmp_path):
    cluster.init_ca("ca")
    alice = cluster.add_node("alice")
    with node_on_tmpfs(cluster, "bob", "8m") as bob:
        bob.enroll(cluster.ca, token=cluster.token("bob"), pregen_key=False)
        cluster.wait_all_know_all()
        assert wait_until(lambda: alice.exists("outbox/bob"), 15), (
            "alice has no outbox/bob: %s" % alice.listdir("outbox"))
        data = os.urandom(12 << 20)
        src = local_file(tmp_path, "twelve.bin", data)
        with InboxWatcher(bob, "alice", interval=0.05) as watch:
            cp(src, alice.mnt / "outbox/bob/twelve.bin")
            time.sleep(6)
            assert not bob.inbox_files("alice"), "something arrived on a full disk"
            assert not at_rest(bob)
            p1 = parts(bob)
            time.sleep(2)
            p2 = parts(bob)
            assert all(p2.get(k, 0) <= v for k, v in p1.items()), (
                "partial transfers keep growing on a full disk: %s -> %s" % (p1, p2))
            assert bob.listdir("certs"), "bob stopped serving its tree"
            assert alice.exists("outbox/bob/twelve.bin"), "the file left the outbox undelivered"
            tmpfs_resize(bob.state, "64m")
            wait_delivered(bob, "alice", "twelve.bin", sha256_bytes(data),
                           size=len(data), timeout=DELIVERY_TIMEOUT)
        wait_outbox_gone(alice, "bob", "twelve.bin")
        assert_delivered_once(bob, "twelve.bin", sha256_bytes(data), len(data))
        assert set(watch.seen) == {"twelve.bin"} and watch.seen["twelve.bin"] == {len(data)}, (
            "partial or stray files were visible: %s" % {k: sorted(v) for k, v in watch.seen.items()})
