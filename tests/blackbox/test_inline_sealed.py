"""A small file's sealed copy lives in its job record (STATE/jobs/ID.job,
sealed=), not in a blob file: STATE/sealed/ stays empty for files up to
4080 bytes, while a bigger one still has its blob. Such files arrive
exactly once whichever way they go: in a batch, alone as post/blob (the
probe to a peer that was down), to several recipients, and after a
kill -9 of the sender right after cp. A record in the older form (no
sealed=, a blob file) is still sent.
"""

import base64
import os
import re

import pytest

from snoopnodes import (DELIVERY_TIMEOUT, build_ca_and, make_tree,
                        module_cluster, run_tool, wait_until)

# The largest file whose sealed copy (plus the 16-byte tag) fits the record.
INLINE_MAX = 4096 - 16

build = build_ca_and("alice", "bob", "carol")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "inline", build)


@pytest.fixture(scope="module")
def nodes(net):
    alice = net.nodes["alice"]
    assert wait_until(lambda: alice.exists("outbox/bob"), 15), \
        "alice's outbox has no folder for bob"
    return net.nodes


def listing(node, sub):
    d = node.state / sub
    return sorted(os.listdir(str(d))) if d.is_dir() else []


def records(node):
    """{job id: record text} of NODE's STATE/jobs."""
    out = {}
    for name in listing(node, "jobs"):
        if name.endswith(".job"):
            try:
                out[name[:-4]] = (node.state / "jobs" / name).read_text()
            except OSError:
                pass
    return out


def received(node, sender, prefix):
    """[(path, how)] of the files under PREFIX NODE's log says it stored."""
    text = node.log.read_text(errors="replace")
    pat = re.compile(r"received '(%s[^']*)' from '%s' \(([^)]*)\)"
                     % (re.escape(prefix), re.escape(sender)))
    return [(m.group(1), m.group(2)) for m in pat.finditer(text)]


def arrive_once(node, sender, prefix, spec, timeout=4 * DELIVERY_TIMEOUT):
    want = {rel: len(data) for rel, data in spec.items()}
    ok = wait_until(lambda: node.files("inbox/%s/%s" % (sender, prefix)) == want,
                    timeout, interval=0.25)
    got = node.files("inbox/%s/%s" % (sender, prefix))
    assert ok, "%s: %d of %d files (missing e.g. %s)\n%s" % (
        node.name, len(got), len(want), sorted(set(want) - set(got))[:5],
        node.log_tail())
    for rel, data in spec.items():
        assert node.read_bytes("inbox/%s/%s/%s" % (sender, prefix, rel)) == data
    paths = [p for p, _ in received(node, sender, prefix + "/")]
    twice = sorted(p for p in set(paths) if paths.count(p) != 1)
    assert not twice, "stored more than once: %s" % twice
    assert len(paths) == len(spec)


def settled(alice):
    assert wait_until(lambda: not listing(alice, "jobs"), DELIVERY_TIMEOUT), (
        "job records left: %s" % listing(alice, "jobs"))
    assert not listing(alice, "sealed"), listing(alice, "sealed")


def test_small_files_keep_no_blob(nodes, tmp_path):
    """bob is down: the records of the small files hold their sealed copy
    and STATE/sealed holds only the blob of the one bigger file. Back up,
    bob gets them all once, the first alone as post/blob (the probe after
    the failures), which then reads the copy from the record."""
    alice, bob = nodes["alice"], nodes["bob"]
    spec = {"f%02d.bin" % i: os.urandom(1024) for i in range(12)}
    spec["empty.bin"] = b""
    spec["edge.bin"] = os.urandom(INLINE_MAX)
    spec["over.bin"] = os.urandom(INLINE_MAX + 1)
    make_tree(tmp_path / "small", spec)
    bob.unmount()
    try:
        r = run_tool(["cp", "-r", str(tmp_path / "small"),
                      str(alice.mnt / "outbox" / "bob")])
        assert r.returncode == 0, r.stderr
        assert wait_until(lambda: len(records(alice)) == len(spec), 30), (
            listing(alice, "jobs"))
        recs = records(alice)
        inline = [i for i, t in recs.items() if "\nsealed=" in t]
        assert len(inline) == len(spec) - 1, (
            "%d of %d records hold their sealed copy" % (len(inline), len(spec)))
        blobs = listing(alice, "sealed")
        assert len(blobs) == 1, "STATE/sealed: %s" % blobs
        big = blobs[0][:-len(".blob")]
        assert big not in inline and "\nsize=%d\n" % (INLINE_MAX + 1) in recs[big]
        # Let the failures to reach bob count, so that the next file to
        # him goes alone.
        assert wait_until(lambda: "bob" in alice.log.read_text(
            errors="replace"), 5)
    finally:
        bob.restart()
    arrive_once(bob, "alice", "small", spec)
    hows = [how for _, how in received(bob, "alice", "small/")]
    assert any("batch" not in h for h in hows), hows
    settled(alice)


def test_small_file_to_two_recipients(nodes):
    alice, bob, carol = nodes["alice"], nodes["bob"], nodes["carol"]
    folder = "bob,carol"
    if not alice.exists("outbox/" + folder):
        os.mkdir(str(alice.mnt / "outbox" / folder))
    spec = {"two%d.txt" % i: os.urandom(1000 + i) for i in range(3)}
    os.mkdir(str(alice.mnt / "outbox" / folder / "two"))
    for rel, data in spec.items():
        alice.write_bytes("outbox/%s/two/%s" % (folder, rel), data)
    assert not listing(alice, "sealed"), listing(alice, "sealed")
    for who in (bob, carol):
        arrive_once(who, "alice", "two", spec)
    settled(alice)


def test_sender_killed_right_after_cp(nodes, tmp_path):
    """kill -9 of alice right after cp -r of small files returned: every
    file arrives exactly once after the remount, and no blob is left."""
    alice, bob = nodes["alice"], nodes["bob"]
    spec = {"d%d/k%03d.bin" % (i % 3, i): os.urandom(1024 + i) for i in range(60)}
    make_tree(tmp_path / "killed", spec)
    r = run_tool(["cp", "-r", str(tmp_path / "killed"),
                  str(alice.mnt / "outbox" / "bob")])
    assert r.returncode == 0, r.stderr
    alice.crash()
    alice.restart()
    arrive_once(bob, "alice", "killed", spec)
    settled(alice)


def test_older_record_with_blob_still_sends(nodes):
    """A record as an older version wrote it (no sealed= line, the sealed
    copy in STATE/sealed/ID.blob) is sent as before: the pending small
    files' records are turned into that form while alice is stopped."""
    alice, bob = nodes["alice"], nodes["bob"]
    spec = {"old%d.txt" % i: os.urandom(900 + i) for i in range(4)}
    bob.unmount()
    try:
        os.mkdir(str(alice.mnt / "outbox" / "bob" / "older"))
        for rel, data in spec.items():
            alice.write_bytes("outbox/bob/older/%s" % rel, data)
        assert wait_until(lambda: len(records(alice)) == len(spec), 30)
        alice.unmount()
        for jid, text in records(alice).items():
            lines = text.splitlines(True)
            sealed = [l for l in lines if l.startswith("sealed=")]
            assert len(sealed) == 1, text
            blob = base64.b64decode(sealed[0][len("sealed="):].strip(),
                                    validate=True)
            (alice.state / "sealed" / (jid + ".blob")).write_bytes(blob)
            os.chmod(str(alice.state / "sealed" / (jid + ".blob")), 0o600)
            (alice.state / "jobs" / (jid + ".job")).write_text(
                "".join(l for l in lines if not l.startswith("sealed=")))
        alice.restart()
    finally:
        bob.restart()
    arrive_once(bob, "alice", "older", spec)
    settled(alice)
