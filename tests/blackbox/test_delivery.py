"""File delivery: what a user sees when copying into outbox/PEER/.

One cluster for the module: the CA, alice (the sender in every test), bob
(always up), and carol and dave (taken down by the tests that need a
receiver that is away, and brought back before the test ends). A file is
delivered when bob's inbox/alice/PATH reads back byte-identical (SHA-256).
"""

import contextlib
import errno
import mmap
import os
import re
import secrets
import shutil
import subprocess
import time

import pytest

from snoopnodes import (BIG_TIMEOUT, DELIVERY_TIMEOUT, STATE_XATTR, InboxWatcher,
                        bounded, build_ca_and, files_containing,
                        is_temp_name, make_tree, module_cluster, run_tool,
                        sha256_bytes, wait_delivered, wait_outbox_gone,
                        wait_until)

PEERS = ("ca", "bob", "carol", "dave")
# What getxattr user.snoopfs.state may say for one recipient that is down.
DOWN_STATE = r"(queued|failed: .+)"
PENDING_STATE = r"(queued|sending ([0-9]|[1-9][0-9]|100)%|failed: .+)"
READ_ONLY_ERRNOS = (errno.EACCES, errno.EROFS, errno.EPERM)


build = build_ca_and("alice", "bob", "carol", "dave")


def remove_big_files(base, limit=64 << 20):
    """Frees the disk of the 1 GiB copies once everything is unmounted."""
    for dirpath, dirs, files in os.walk(str(base)):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                if os.lstat(p).st_size > limit:
                    os.unlink(p)
            except OSError:
                pass


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    holder = {}

    def build_and_keep(c):
        holder["c"] = c
        build(c)
    try:
        yield from module_cluster(tmp_path_factory, snoopfs_bin, "deliver",
                                  build_and_keep)
    finally:
        if "c" in holder:
            remove_big_files(holder["c"].base)


@pytest.fixture(scope="module")
def nodes(net):
    alice = net.nodes["alice"]
    # The outbox folders follow certs/; give them a moment after enrollment.
    ok = wait_until(lambda: all(alice.exists("outbox/%s" % p) for p in PEERS), 15)
    assert ok, "alice's outbox/ lists %s, want a folder for each of %s" % (
        _listing(alice, "outbox"), PEERS)
    return net.nodes


def _listing(node, rel):
    try:
        return node.listdir(rel)
    except OSError as e:
        return "(%s)" % e


def local_file(tmp_path, name, data):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def cp(src, dst, *opts):
    r = run_tool(["cp", *opts, src, dst])
    assert r.returncode == 0, "cp %s %s: %s" % (src, dst, r.stderr)


def send_and_wait(alice, bob, tmp_path, name, data, folder="bob"):
    src = local_file(tmp_path, "src-" + name.replace("/", "_"), data)
    cp(src, alice.mnt / "outbox" / folder / name)
    wait_delivered(bob, "alice", name, sha256_bytes(data), size=len(data))
    return src


@contextlib.contextmanager
def away(*nodes):
    """Unmounts NODES for the block; whatever is still down is remounted after."""
    for n in nodes:
        n.unmount()
    try:
        yield
    finally:
        for n in nodes:
            if not n.is_mounted():
                n.restart()


def new_blobs(alice, before):
    return sorted(set(_glob(alice.state / "sealed", ".blob")) - before)


def _glob(d, suffix):
    try:
        return [f for f in os.listdir(str(d)) if f.endswith(suffix)]
    except OSError:
        return []


# --- the tree ------------------------------------------------------------------

def test_outbox_has_a_folder_per_peer(nodes):
    alice = nodes["alice"]
    listing = alice.listdir("outbox")
    peers = alice.cert_names() - {"alice"}
    assert peers >= set(PEERS)
    for p in peers:
        assert p in listing, "outbox/%s missing: %s" % (p, listing)
        assert bounded(os.path.isdir, str(alice.mnt / "outbox" / p))
    assert "alice" not in listing, "a node has no outbox folder for itself"
    assert "root" not in listing and "crl" not in listing


def test_top_folders_have_real_times(nodes):
    # alice only sends in this module, so her inbox/ has nothing behind it
    # yet: it used to say 1970-01-01 in ls -l.
    now = time.time()
    for name in ("alice", "bob"):
        for top in ("inbox", "outbox", "certs"):
            st = bounded(os.stat, str(nodes[name].mnt / top))
            assert now - 86400 < st.st_mtime <= now + 60, \
                "%s's %s/ has mtime %s" % (name, top, st.st_mtime)


def test_multi_recipient_mkdir(nodes):
    alice = nodes["alice"]
    bounded(os.mkdir, str(alice.mnt / "outbox" / "bob,carol"))
    assert bounded(os.path.isdir, str(alice.mnt / "outbox" / "bob,carol"))
    assert "bob,carol" in alice.listdir("outbox")
    for bad in ("bob,nobody-here", "nobody-here", "bob,alice-does-not-exist",
                "bob,", ",bob"):
        with pytest.raises(OSError):
            bounded(os.mkdir, str(alice.mnt / "outbox" / bad))
        assert bad not in alice.listdir("outbox"), bad


# --- copying in ----------------------------------------------------------------

def test_cp_small_file(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    data = os.urandom(10_000) + b"small file end\n"
    send_and_wait(alice, bob, tmp_path, "small.bin", data)
    assert bob.read_bytes("inbox/alice/small.bin") == data
    wait_outbox_gone(alice, "bob", "small.bin")


def test_empty_file(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    send_and_wait(alice, bob, tmp_path, "empty.txt", b"")
    assert bob.read_bytes("inbox/alice/empty.txt") == b""
    wait_outbox_gone(alice, "bob", "empty.txt")


def small_tree(tag):
    return {
        "top.txt": b"top of %s\n" % tag.encode(),
        "sub/two-chunks.bin": os.urandom(65536 + 4321),
        "sub/deeper/leaf.txt": b"leaf\n" * 100,
        "sub/deeper/exactly-64k.bin": os.urandom(65536),
        "with space/na me.txt": b"spaces in names\n",
    }


def check_tree(bob, prefix, spec, timeout=DELIVERY_TIMEOUT):
    for rel, data in spec.items():
        wait_delivered(bob, "alice", "%s/%s" % (prefix, rel), sha256_bytes(data),
                       size=len(data), timeout=timeout)
    got = set(bob.files("inbox/alice/%s" % prefix))
    assert got == set(spec), "inbox/alice/%s holds %s, want %s" % (
        prefix, sorted(got), sorted(spec))


def test_cp_recursive_tree(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    spec = small_tree("cp")
    make_tree(tmp_path / "proj", spec)
    cp(tmp_path / "proj", alice.mnt / "outbox" / "bob", "-r")
    check_tree(bob, "proj", spec)
    for rel in spec:
        wait_outbox_gone(alice, "bob", "proj/" + rel)


def test_rsync_tree(nodes, tmp_path):
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed")
    alice, bob = nodes["alice"], nodes["bob"]
    spec = {"f%02d.txt" % i: (b"rsync file %d\n" % i) * (i * 50 + 1)
            for i in range(16)}
    spec.update({"d/e/g%02d.bin" % i: os.urandom(i * 9000 + 7) for i in range(8)})
    make_tree(tmp_path / "rs", spec)
    with InboxWatcher(bob, "alice", interval=0.02) as watch:
        r = run_tool(["rsync", "-a", str(tmp_path / "rs") + "/",
                      str(alice.mnt / "outbox" / "bob" / "rs") + "/"])
        assert r.returncode == 0, "rsync -a: %s" % r.stderr
        check_tree(bob, "rs", spec)
    assert watch.polls > 3
    temps = sorted(p for p in watch.seen if is_temp_name(p))
    assert not temps, "temporary names appeared in bob's inbox: %s" % temps
    stray = sorted(p for p in watch.seen if p.startswith("rs/")
                   and p[3:] not in spec)
    assert not stray, "unexpected files appeared in bob's inbox: %s" % stray


def test_tar_extract(nodes, tmp_path):
    if shutil.which("tar") is None:
        pytest.skip("tar is not installed")
    alice, bob = nodes["alice"], nodes["bob"]
    spec = small_tree("tar")
    make_tree(tmp_path / "src" / "tarred", spec)
    archive = tmp_path / "t.tar"
    r = run_tool(["tar", "-cf", archive, "-C", tmp_path / "src", "tarred"])
    assert r.returncode == 0, r.stderr
    r = run_tool(["tar", "-xf", archive, "-C", alice.mnt / "outbox" / "bob"])
    assert r.returncode == 0, "tar -x into outbox/bob: %s" % r.stderr
    check_tree(bob, "tarred", spec)


@pytest.mark.parametrize("bs,size", [(1000, 200_001), (3, 3_001), (65537, 300_000)],
                         ids=["bs1000", "bs3", "bs65537"])
def test_dd_block_sizes(nodes, tmp_path, bs, size):
    alice, bob = nodes["alice"], nodes["bob"]
    data = os.urandom(size)
    src = local_file(tmp_path, "dd-src", data)
    name = "dd-%d.bin" % bs
    r = run_tool(["dd", "if=%s" % src, "of=%s" % (alice.mnt / "outbox/bob" / name),
                  "bs=%d" % bs, "status=none"])
    assert r.returncode == 0, "dd: %s" % r.stderr
    wait_delivered(bob, "alice", name, sha256_bytes(data), size=size)


def test_overwrite_in_the_middle_before_close(nodes):
    """Writes, seeks back over a chunk boundary, overwrites, extends; one close."""
    alice, bob = nodes["alice"], nodes["bob"]
    data = bytearray(os.urandom(200_000))
    patch = os.urandom(10_000)
    path = str(alice.mnt / "outbox/bob/patched.bin")

    def write():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for off in range(0, len(data), 1000):
                os.write(fd, bytes(data[off:off + 1000]))
            os.lseek(fd, 60_000, os.SEEK_SET)        # spans the 64 KiB boundary
            os.write(fd, patch)
            os.pwrite(fd, b"TAIL", len(data) + 6)    # a hole of 6 bytes, then TAIL
        finally:
            os.close(fd)
    bounded(write, what="write patched.bin")
    data[60_000:70_000] = patch
    want = bytes(data) + b"\0" * 6 + b"TAIL"
    wait_delivered(bob, "alice", "patched.bin", sha256_bytes(want), size=len(want))


def test_temp_names_never_shipped(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    out = alice.mnt / "outbox" / "bob" / "tmpnames"
    bounded(lambda: os.makedirs(str(out / "sub"), exist_ok=True))
    temps = [".hidden", "x~", "x.swp", "x.swx", "x.tmp", "x.part",
             ".dir/inner.txt", "sub/.hidden2", "sub/y.part"]
    with InboxWatcher(bob, "alice", interval=0.05) as watch:
        for rel in temps:
            bounded(lambda: os.makedirs(str((out / rel).parent), exist_ok=True))
            alice.write_bytes("outbox/bob/tmpnames/" + rel, b"not for shipping " + rel.encode())
        # A download tool's temp+rename, and an editor's swap file next to
        # the real file.
        alice.write_bytes("outbox/bob/tmpnames/download.bin.part", b"downloaded\n" * 100)
        bounded(os.rename, str(out / "download.bin.part"), str(out / "download.bin"))
        alice.write_bytes("outbox/bob/tmpnames/.notes.txt.swp", b"swap\n")
        alice.write_bytes("outbox/bob/tmpnames/notes.txt", b"the notes\n")
        wait_delivered(bob, "alice", "tmpnames/download.bin",
                       sha256_bytes(b"downloaded\n" * 100))
        wait_delivered(bob, "alice", "tmpnames/notes.txt", sha256_bytes(b"the notes\n"))
        time.sleep(1.5)
    shipped = sorted(p for p in watch.seen if p.startswith("tmpnames/"))
    assert shipped == ["tmpnames/download.bin", "tmpnames/notes.txt"], (
        "bob's inbox showed %s" % shipped)
    # The temp files themselves are still there in the outbox for their writer.
    assert alice.exists("outbox/bob/tmpnames/x.part")


def test_links_and_special_files_refused(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    out = alice.mnt / "outbox" / "bob"
    alice.write_bytes("outbox/bob/linked.txt", b"a file\n")
    wait_delivered(bob, "alice", "linked.txt", sha256_bytes(b"a file\n"))
    alice.write_bytes("outbox/bob/.held.tmp", b"held\n")
    attempts = {
        "symlink": lambda: os.symlink("linked.txt", str(out / "sym")),
        "hard link": lambda: os.link(str(out / ".held.tmp"), str(out / "hard")),
        "fifo": lambda: os.mkfifo(str(out / "fifo")),
    }
    for what, fn in attempts.items():
        with pytest.raises(OSError) as e:
            bounded(fn, what=what)
        assert e.value.errno == errno.EPERM, "%s: %s" % (what, e.value)
    # ln -s tells the user in words, not "Function not implemented".
    r = run_tool(["ln", "-s", "linked.txt", str(out / "sym2")],
                 env=dict(os.environ, LC_ALL="C"))
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    listing = alice.listdir("outbox/bob")
    assert not {"sym", "sym2", "hard", "fifo"} & set(listing), listing
    # Nothing half-made reached bob, and alice still ships.
    send_and_wait(alice, bob, tmp_path, "after-links.txt", b"still shipping\n")
    assert not {"sym", "sym2", "hard", "fifo"} & set(bob.listdir("inbox/alice"))
    bounded(os.unlink, str(out / ".held.tmp"))


def test_big_file(nodes, big_file):
    alice, bob = nodes["alice"], nodes["bob"]
    r = run_tool(["cp", big_file.path, alice.mnt / "outbox/bob/big.bin"],
                 timeout=BIG_TIMEOUT)
    assert r.returncode == 0, "cp of 1 GiB: %s" % r.stderr
    # While it is pending, its state reads as the brief says.
    states = []
    for _ in range(40):
        try:
            states.append(alice.getxattr("outbox/bob/big.bin"))
        except FileNotFoundError:
            break
        time.sleep(0.05)
    odd = [s for s in states if not re.fullmatch(PENDING_STATE, s)]
    assert not odd, "user.snoopfs.state of a pending file: %s" % odd
    wait_delivered(bob, "alice", "big.bin", big_file.sha256, size=big_file.size,
                   timeout=BIG_TIMEOUT, hash_timeout=BIG_TIMEOUT)
    # A few reads far from the start (random access into a big blob).
    path = str(bob.mnt / "inbox/alice/big.bin")

    def preads():
        with open(path, "rb") as f, open(str(big_file.path), "rb") as g:
            for off in (big_file.size - 1, big_file.size // 2 + 65530,
                        123 * 65536 - 3, 7):
                f.seek(off)
                g.seek(off)
                assert f.read(4096) == g.read(4096), "differs at %d" % off
    bounded(preads, timeout=60)
    wait_outbox_gone(alice, "bob", "big.bin", timeout=BIG_TIMEOUT)
    bounded(os.unlink, path)     # frees bob's disk


# --- several recipients ----------------------------------------------------------

def _sealed_as(alice, rel):
    """The blob ids alice's log says REL was sealed as, in order."""
    return re.findall(r"outbox: %s sealed as ([0-9a-f]{32})" % re.escape(rel),
                      alice.log.read_text(errors="replace"))


def test_sealed_while_written(nodes):
    """A file written from start to end is sealed while it is written, and
    that blob is the one shipped; a write behind the writer throws it away
    and the file is sealed again whole, under a new id. Both arrive exactly
    as written."""
    alice, bob = nodes["alice"], nodes["bob"]
    chunk = 65536

    def write_in_two(name, behind=None):
        data = bytearray(os.urandom(40 * chunk + 123))
        before = set(_glob(alice.state / "sealed", ".blob"))
        f = bounded(open, str(alice.mnt / "outbox/bob" / name), "wb", 0,
                    what="open " + name)
        try:
            bounded(f.write, bytes(data[:20 * chunk]), what="write " + name)
            ahead = wait_until(lambda: new_blobs(alice, before), 10)
            assert ahead and len(ahead) == 1, (
                "no blob sealed while %s is still open: %s" % (
                    name, _glob(alice.state / "sealed", "")))
            if behind is not None:
                data[behind:behind + 10] = b"X" * 10
                bounded(f.seek, behind, what="seek")
                bounded(f.write, b"X" * 10, what="write behind")
                assert wait_until(lambda: not new_blobs(alice, before), 10), (
                    "the blob sealed ahead stays after a write behind the "
                    "writer: %s" % new_blobs(alice, before))
                bounded(f.seek, 20 * chunk, what="seek")
            bounded(f.write, bytes(data[20 * chunk:]), what="write " + name)
        finally:
            bounded(f.close, what="close " + name)
        wait_delivered(bob, "alice", name, sha256_bytes(bytes(data)),
                       size=len(data))
        assert bob.read_bytes("inbox/alice/" + name) == bytes(data)
        wait_outbox_gone(alice, "bob", name)
        return ahead[0][:-len(".blob")], _sealed_as(alice, "bob/" + name)

    ahead, sealed = write_in_two("ahead.bin")
    assert sealed == [ahead], "shipped as %s, sealed ahead as %s" % (sealed, ahead)
    ahead, sealed = write_in_two("behind.bin", behind=3 * chunk + 5)
    assert len(sealed) == 1 and sealed[0] != ahead, (
        "a file changed behind the writer was shipped as %s, the blob sealed "
        "ahead was %s" % (sealed, ahead))


def test_multi_recipient_one_blob(nodes, tmp_path):
    alice, carol, dave = nodes["alice"], nodes["carol"], nodes["dave"]
    folder = "carol,dave"
    try:
        bounded(os.mkdir, str(alice.mnt / "outbox" / folder))
    except FileExistsError:
        pass
    data = os.urandom(3 * 65536 + 99)
    src = local_file(tmp_path, "multi.bin", data)
    before = set(_glob(alice.state / "sealed", ".blob"))
    with away(carol, dave):
        cp(src, alice.mnt / "outbox" / folder / "multi.bin")
        assert alice.exists("outbox/%s/multi.bin" % folder), "pending file not listed"
        assert wait_until(lambda: new_blobs(alice, before), 15), (
            "no STATE/sealed/*.blob for a pending file: %s" % _glob(
                alice.state / "sealed", ""))
        time.sleep(1.0)
        blobs = new_blobs(alice, before)
        assert len(blobs) == 1, "one file for two recipients must be sealed once: %s" % blobs
        assert re.fullmatch(r"[0-9a-f]{32}\.blob", blobs[0]), blobs
        assert _glob(alice.state / "jobs", ""), "no job record in STATE/jobs"
        state = wait_until(lambda: _state_ok_multi(alice, folder), 15)
        assert state, "state of a file for two receivers that are down: %r" % (
            alice.getxattr("outbox/%s/multi.bin" % folder),)
        carol.restart()
        dave.restart()
        for who in (carol, dave):
            wait_delivered(who, "alice", "multi.bin", sha256_bytes(data), size=len(data))
        wait_outbox_gone(alice, folder, "multi.bin")
    assert wait_until(lambda: blobs[0] not in _glob(alice.state / "sealed", ".blob"), 10), (
        "sealed blob kept after every recipient sent a receipt")


def _state_ok_multi(alice, folder):
    s = alice.getxattr("outbox/%s/multi.bin" % folder)
    return re.fullmatch(r"(carol|dave): %s, (carol|dave): %s" % (DOWN_STATE, DOWN_STATE),
                        s) and "carol:" in s and "dave:" in s and s


# --- pending files ------------------------------------------------------------------

def test_pending_listed_then_gone(nodes, tmp_path):
    alice, dave = nodes["alice"], nodes["dave"]
    data = b"pending for dave\n" * 1000
    src = local_file(tmp_path, "p.txt", data)
    with away(dave):
        cp(src, alice.mnt / "outbox/dave/pending.txt")
        time.sleep(1.0)
        assert "pending.txt" in alice.listdir("outbox/dave"), "pending file not listed"
        assert not (dave.state / "inbox" / "alice" / "pending.txt").exists()
        dave.restart()
        wait_delivered(dave, "alice", "pending.txt", sha256_bytes(data), size=len(data))
        wait_outbox_gone(alice, "dave", "pending.txt")
    assert "pending.txt" not in alice.listdir("outbox/dave")


def test_state_xattr_while_receiver_down(nodes, tmp_path):
    alice, dave = nodes["alice"], nodes["dave"]
    data = os.urandom(5000)
    src = local_file(tmp_path, "x.bin", data)
    rel = "outbox/dave/xattr.bin"
    with away(dave):
        cp(src, alice.mnt / rel)
        states = []

        def looks_right():
            states.append(alice.getxattr(rel))
            return re.fullmatch(DOWN_STATE, states[-1])
        assert wait_until(looks_right, 10), "user.snoopfs.state said %r" % states[-3:]
        # alice keeps retrying (backoff 1, 2, 4 s): a try that cannot
        # connect must not show the file as being sent.
        later = []
        end = time.monotonic() + 3
        while time.monotonic() < end:
            later.append(alice.getxattr(rel))
            time.sleep(0.01)
        odd = {x for x in later if not re.fullmatch(DOWN_STATE, x)}
        assert not odd, "states while dave is down: %r" % odd
        r = run_tool(["getfattr", "--only-values", "-n", STATE_XATTR, alice.mnt / rel])
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(DOWN_STATE, r.stdout.strip()), r.stdout
        dave.restart()
        wait_delivered(dave, "alice", "xattr.bin", sha256_bytes(data))
        wait_outbox_gone(alice, "dave", "xattr.bin")


def test_status_lists_pending(nodes, net, tmp_path):
    alice, dave = nodes["alice"], nodes["dave"]
    data = b"status probe\n"
    src = local_file(tmp_path, "s.txt", data)
    with away(dave):
        cp(src, alice.mnt / "outbox/dave/status-probe.txt")
        # The file is queued once its seal (after close) is done.
        outs = []

        def listed():
            outs.append(net.snoop.run("status", alice.mnt))
            return "    status-probe.txt " in outs[-1].stdout
        wait_until(listed, 10)
        r = outs[-1]
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        peer = [l for l in lines if re.match(r"  dave: \d+ pending", l)]
        assert peer, "status does not mention peer dave:\n" + r.stdout
        # Each pending file has its own line with its state, so one stuck
        # file ahead of it does not hide this one.
        mine = [l.split(None, 1) for l in lines if l.startswith("    status-probe.txt ")]
        assert mine, "status does not show the pending file:\n" + r.stdout
        assert re.fullmatch(DOWN_STATE, mine[0][1]), r.stdout
        dave.restart()
        wait_delivered(dave, "alice", "status-probe.txt", sha256_bytes(data))


# --- the inbox ----------------------------------------------------------------------

def test_inbox_read_only_and_rm_consumes(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    data = b"read only please\n" * 50
    send_and_wait(alice, bob, tmp_path, "ro.txt", data)
    path = str(bob.mnt / "inbox/alice/ro.txt")
    for mode in ("r+b", "ab", "wb"):
        with pytest.raises(OSError) as ei:
            bounded(lambda: open(path, mode).close(), what="open %s" % mode)
        assert ei.value.errno in READ_ONLY_ERRNOS, (mode, ei.value)
    with pytest.raises(OSError) as ei:
        bounded(os.truncate, path, 0)
    assert ei.value.errno in READ_ONLY_ERRNOS, ei.value
    assert bob.read_bytes("inbox/alice/ro.txt") == data
    rest = bob.state / "inbox" / "alice" / "ro.txt"
    assert rest.exists(), "the received file does not rest in STATE/inbox/alice/"
    bounded(os.unlink, path)
    assert "ro.txt" not in bob.listdir("inbox/alice")
    assert wait_until(lambda: not rest.exists(), 5), "rm left %s" % rest
    time.sleep(1.5)
    assert "ro.txt" not in bob.listdir("inbox/alice"), "a consumed file came back"


def test_rm_while_open_keeps_serving(nodes, tmp_path):
    """rm of an inbox file another program still reads, and of an outbox
    file still being written: the open descriptors keep working, nothing
    ships, and the daemons stay up (a regression: with no path left,
    release once took a file handle for the wrong kind and crashed)."""
    alice, bob = nodes["alice"], nodes["bob"]
    data = os.urandom(200_000)
    send_and_wait(alice, bob, tmp_path, "open-rm.bin", data)
    path = str(bob.mnt / "inbox/alice/open-rm.bin")

    def read_after_rm():
        with open(path, "rb") as f:
            head = f.read(1000)
            os.unlink(path)
            return head + f.read()
    assert bounded(read_after_rm, what="read after rm") == data
    assert "open-rm.bin" not in bob.listdir("inbox/alice")

    out = str(alice.mnt / "outbox/bob/half-written.bin")

    def write_after_rm():
        with open(out, "wb") as f:
            f.write(b"x" * 100_000)
            os.unlink(out)
            f.write(b"y" * 100_000)
    bounded(write_after_rm, what="write after rm")
    time.sleep(1.5)
    assert "half-written.bin" not in bob.listdir("inbox/alice")
    # Both daemons still answer.
    assert "certs" in alice.listdir(".") and "certs" in bob.listdir(".")


def test_redelivery_replaces(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    v1 = b"version one\n" * 3000
    v2 = os.urandom(70_000)
    send_and_wait(alice, bob, tmp_path, "again.bin", v1)
    wait_outbox_gone(alice, "bob", "again.bin")
    src = local_file(tmp_path, "v2", v2)
    cp(src, alice.mnt / "outbox/bob/again.bin")
    wait_delivered(bob, "alice", "again.bin", sha256_bytes(v2), size=len(v2))
    assert [n for n in bob.listdir("inbox/alice") if "again" in n] == ["again.bin"]


def test_random_access_reads(nodes, tmp_path):
    alice, bob = nodes["alice"], nodes["bob"]
    size = 5 * 65536 + 777
    data = os.urandom(size)
    src = send_and_wait(alice, bob, tmp_path, "random.bin", data)
    path = str(bob.mnt / "inbox/alice/random.bin")

    def reads():
        with open(path, "rb", buffering=0) as f:
            for off, n in ((65530, 20), (0, 1), (size - 1, 1), (3 * 65536 - 5, 70_000),
                           (2 * 65536, 65536), (size - 100, 4096), (size, 10),
                           (100_000, 1)):
                f.seek(off)
                assert f.read(n) == data[off:off + n], "read %d@%d" % (n, off)
            assert os.pread(f.fileno(), 333, 200_000) == data[200_000:200_333]
    bounded(reads)

    def mapped():
        with open(path, "rb") as f:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                assert len(m) == size
                assert m[65530:65550] == data[65530:65550]
                assert m[size - 10:] == data[size - 10:]
                assert m[:] == data
    bounded(mapped)
    r = subprocess.run(["tail", "-c", "1000", path], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == data[-1000:]
    r = run_tool(["cmp", src, path])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_tool(["sha256sum", path])
    assert r.returncode == 0 and r.stdout.split()[0] == sha256_bytes(data)


# --- nothing in the clear at rest -----------------------------------------------------

def marker_needles(marker):
    """The marker as written, and as hex and base64 (at every alignment)."""
    import base64
    m = marker.encode()
    out = [m, m.hex().encode()]
    for pad in range(3):
        b = base64.b64encode(b"\0" * pad + m)
        out.append(b[8:-8])
    return out


def test_no_plaintext_at_rest(nodes, net, tmp_path):
    alice, bob, dave = nodes["alice"], nodes["bob"], nodes["dave"]
    marker = "SNOOPFS-MARKER-" + secrets.token_hex(16)
    data = ("%s line\n" % marker).encode() * 5000      # three chunks, marker in each
    needles = marker_needles(marker)
    states = [n.state for n in net.nodes.values()]

    def no_hits(where):
        hits = files_containing(states, needles)
        assert not hits, "plaintext %s: %s" % (where, hits)
    with away(dave):
        # Still open (flushed and fsynced, not closed): no plaintext either.
        path = str(alice.mnt / "outbox/dave/secret.txt")

        def write_open():
            f = open(path, "wb")
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            return f
        f = bounded(write_open, what="write secret.txt")
        try:
            no_hits("under STATE while the file is open")
        finally:
            bounded(f.close, what="close secret.txt")
        src = local_file(tmp_path, "secret.txt", data)
        cp(src, alice.mnt / "outbox/bob/secret.txt")
        wait_delivered(bob, "alice", "secret.txt", sha256_bytes(data))
        no_hits("under STATE while pending for dave and delivered to bob")
        dave.restart()
        wait_delivered(dave, "alice", "secret.txt", sha256_bytes(data))
    assert marker.encode() in bob.read_bytes("inbox/alice/secret.txt")
    no_hits("under STATE after delivery")
    wait_outbox_gone(alice, "dave", "secret.txt")
    no_hits("under STATE after the receipts")
