"""snoopfs run like a service, seen from outside (issue 20 items 4, 5, 7).

* --group GROUP with -o allow_other: real users made for the test; a member
  reads inbox/ and certs/ and writes outbox/ (cp, rsync -a), an outsider
  gets "Permission denied"; without --group nobody but the mounting user
  gets in, also with allow_other; --group without allow_other is refused.
* `status --json` parses and follows a real transfer: files pending while
  the peer is down (path, bytes, state, last error), then the counters and
  the last delivery once it is back; a report larger than one xattr page
  still comes whole. `status --prometheus` passes a strict parser of the
  text exposition format and says what the JSON says.
* Unmounting with files pending says how many per peer and that they go at
  the next mount, in the log and on stderr under -f; they do.
* `status` on a stale mount prints the fix `mount` prints.
* Refusals of the tree that only an errno reaches are said in words in the
  log, at most a line a second per cause.

One CA, alice and bob are shared by the module, under a directory other
users may pass through (the group test needs it); each test leaves alice
and bob mounted as it found them.
"""

import calendar
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from snoopnodes import (CMD_TIMEOUT, EXIT_TIMEOUT, MOUNT_TIMEOUT, Cluster,
                        Snoop, fusermount_u, pid_alive, sha256_bytes,
                        wait_delivered, wait_until)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PAGE = 8192  # FS_STATUS_PAGE in fs/fs.h


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin):
    # Not under pytest's tmp directory: that is 0700, and the users of the
    # group test must be able to walk to the mount point.
    base = Path(tempfile.mkdtemp(prefix="snoopfs-status-", dir="/tmp"))
    os.chmod(base, 0o711)
    c = Cluster(Snoop(snoopfs_bin, base / "sanitizer"), base / "c")
    c.base.mkdir(mode=0o755)
    try:
        c.init_ca("ca")
        c.add_node("alice")
        c.add_node("bob")
        c.wait_all_know_all()
        yield c
    finally:
        problems = c.teardown()
        shutil.rmtree(base, ignore_errors=True)
        assert not problems, "\n\n".join(problems)


@pytest.fixture
def nodes(net):
    """alice and bob, mounted plainly before and after the test."""
    for n in (net.nodes["alice"], net.nodes["bob"]):
        if not n.is_mounted():
            n.mount()
    yield net.nodes["alice"], net.nodes["bob"]
    for n in (net.nodes["alice"], net.nodes["bob"]):
        if not n.is_mounted():
            n.mount()


def remount(node, *extra):
    node.unmount()
    node.mount(*extra)


def status(net, node, *flags, rc=0):
    r = net.snoop.run("status", *flags, node.mnt)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    return r


def status_json(net, node):
    return json.loads(status(net, node, "--json").stdout)


def peer(doc, name):
    found = [p for p in doc["peers"] if p["name"] == name]
    assert len(found) == 1, doc["peers"]
    return found[0]


def log_text(node):
    return node.log.read_text(errors="replace") if node.log.exists() else ""


# --- item 4: a group of analysts without root ---------------------------------

def run_as(user, *argv, **kw):
    return subprocess.run(["runuser", "-u", user, "--", *map(str, argv)],
                          capture_output=True, text=True, timeout=CMD_TIMEOUT,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.fixture
def users():
    """A group with one member and a user outside it, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("making users needs root")
    for tool in ("groupadd", "useradd", "runuser", "rsync"):
        if shutil.which(tool) is None:
            pytest.skip("%s is missing" % tool)
    tag = uuid.uuid4().hex[:8]
    group, member, outsider = "snpg" + tag, "snpm" + tag, "snpo" + tag
    made = []
    try:
        subprocess.run(["groupadd", group], check=True, timeout=CMD_TIMEOUT)
        made.append(("groupdel", group))
        for user, extra in ((member, ["-G", group]), (outsider, [])):
            subprocess.run(["useradd", "-M", "-N", "-s", "/bin/sh", *extra,
                            user], check=True, timeout=CMD_TIMEOUT)
            made.insert(0, ("userdel", user))
        yield group, member, outsider
    finally:
        for cmd, name in made:
            subprocess.run([cmd, name], timeout=CMD_TIMEOUT,
                           capture_output=True)


def test_group_reads_inbox_and_writes_outbox(net, nodes, users):
    alice, bob = nodes
    group, member, outsider = users
    gid = int(subprocess.run(["getent", "group", group], capture_output=True,
                             text=True, check=True).stdout.split(":")[2])

    # allow_other must be asked for: a node not run by root needs
    # user_allow_other for it.
    alice.unmount()
    r = alice.mount("--group", group, expect_rc=1)
    assert "--group %s needs -o allow_other" % group in r.stderr
    r = alice.mount("--group", "no-such-group-" + group, "-o", "allow_other",
                    expect_rc=1)
    assert "--group takes a group of this system" in r.stderr
    alice.mount("--group", group, "-o", "allow_other")

    data = b"ward,count\n3,17\n"
    bob.write_bytes("outbox/alice/ward.csv", data)
    wait_delivered(alice, bob, "ward.csv", sha256_bytes(data))

    # What the tree shows: the group on everything, the modes it enforces.
    modes = {rel: os.stat(alice.mnt / rel) for rel in (
        ".", "certs", "certs/bob.pem", "inbox", "inbox/bob",
        "inbox/bob/ward.csv", "outbox", "outbox/bob")}
    assert {st.st_gid for st in modes.values()} == {gid}
    assert {rel: oct(st.st_mode & 0o777) for rel, st in modes.items()} == {
        ".": "0o750", "certs": "0o750", "certs/bob.pem": "0o440",
        "inbox": "0o750", "inbox/bob": "0o750",
        "inbox/bob/ward.csv": "0o440", "outbox": "0o770",
        "outbox/bob": "0o770"}

    # Files the users can read (pytest's tmp_path is root's alone).
    src = Path(tempfile.mkdtemp(prefix="members-", dir=net.base))
    os.chmod(src, 0o755)
    (src / "note.txt").write_text("from an analyst\n")
    (src / "sub").mkdir(mode=0o755)
    (src / "sub" / "deep.txt").write_text("deeper\n")

    # A member: cat, ls, cp and rsync -a (which sets modes and times, so
    # what a member makes must be theirs).
    r = run_as(member, "cat", alice.mnt / "inbox/bob/ward.csv")
    assert r.returncode == 0 and r.stdout.encode() == data, r.stderr
    r = run_as(member, "cat", alice.mnt / "certs/bob.pem")
    assert r.returncode == 0 and "BEGIN CERTIFICATE" in r.stdout, r.stderr
    r = run_as(member, "cp", src / "note.txt", alice.mnt / "outbox/bob/")
    assert r.returncode == 0, r.stderr
    r = run_as(member, "rsync", "-a", src / "sub", alice.mnt / "outbox/bob/")
    assert r.returncode == 0, r.stderr
    r = run_as(member, "rm", alice.mnt / "inbox/bob/ward.csv")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # status reads the mount point, not STATE: a member may run it.
    exe = src / "snoopfs"
    shutil.copy(str(net.snoop.binary), str(exe))
    os.chmod(exe, 0o755)
    r = run_as(member, exe, "status", "--json", alice.mnt)
    assert r.returncode == 0 and json.loads(r.stdout)["node"] == "alice", (
        r.stderr)
    wait_delivered(bob, alice, "note.txt",
                   sha256_bytes(b"from an analyst\n"))
    wait_delivered(bob, alice, "sub/deep.txt", sha256_bytes(b"deeper\n"))

    # Someone else: nothing at all.
    for argv in (["cat", alice.mnt / "inbox/bob/ward.csv"],
                 ["cat", alice.mnt / "certs/bob.pem"],
                 ["cp", src / "note.txt", alice.mnt / "outbox/bob/x.txt"],
                 ["ls", alice.mnt], [exe, "status", alice.mnt]):
        r = run_as(outsider, *argv)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (
            argv, r.stdout, r.stderr)
    assert not alice.exists("outbox/bob/x.txt")

    # allow_other without --group: only the mounting user, as without it.
    remount(alice, "-o", "allow_other")
    st = os.stat(alice.mnt / "inbox/bob/ward.csv")
    assert st.st_mode & 0o077 == 0 and os.stat(alice.mnt).st_mode & 0o077 == 0
    r = run_as(member, "cat", alice.mnt / "inbox/bob/ward.csv")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    remount(alice)


# --- item 5: status for scripts and Prometheus ---------------------------------

METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % METRIC)


def parse_exposition(text):
    """Parses Prometheus text exposition (0.0.4) strictly: every line a
    HELP, a TYPE or a sample; each family's HELP and TYPE once, before its
    samples, which come together; label syntax and escapes; numeric values;
    no sample twice. Returns {(name, ((label, value), ...)): float}."""
    assert text.endswith("\n") and "\n\n" not in text
    helps, types, samples = {}, {}, {}
    family, closed = None, set()
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            assert re.fullmatch(METRIC, name) and arg, line
            if kind == "HELP":
                assert name not in helps, "HELP twice: " + line
                helps[name] = arg
            else:
                assert name not in types, "TYPE twice: " + line
                assert arg in ("gauge", "counter"), line
                types[name] = arg
            if family != name:
                if family:
                    closed.add(family)
                assert name not in closed, "family split: " + line
                family = name
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels, value = m.groups()
        assert name == family and name in helps and name in types, (
            "sample outside its family: " + line)
        pairs, pos = [], 0
        labels = labels or ""
        while pos < len(labels):
            lm = LABEL.match(labels, pos)
            assert lm, "bad labels: " + line
            pairs.append((lm.group(1), lm.group(2)))
            pos = lm.end()
            if pos < len(labels):
                assert labels[pos] == "," and pos + 1 < len(labels), line
                pos += 1
        assert len({k for k, _ in pairs}) == len(pairs), line
        key = (name, tuple(sorted(pairs)))
        assert key not in samples, "sample twice: " + line
        samples[key] = float(value)
    for name, kind in types.items():
        assert name.startswith("snoopfs_"), name
        assert (kind == "counter") == name.endswith("_total"), name
    return samples


def prom(samples, metric, **labels):
    """The one sample of METRIC that has LABELS (among others)."""
    want = [v for (n, ls), v in samples.items() if n == metric and
            all((k, str(v)) in ls for k, v in labels.items())]
    assert len(want) == 1, (metric, labels, want)
    return want[0]


def check_schema(doc, node, now):
    assert doc["node"] == node.name and doc["role"] == "node"
    assert doc["listen"] == node.addr
    cert = doc["certificate"]
    assert re.fullmatch(r"[0-9A-F]+", cert["serial"])
    assert RFC3339.match(cert["not_after"])
    left = calendar.timegm(time.strptime(cert["not_after"],
                                         "%Y-%m-%dT%H:%M:%SZ")) - now
    assert abs(cert["seconds_left"] - left) < 30, (cert, left)
    assert cert["seconds_left"] > 6 * 86400
    assert isinstance(doc["crl"]["number"], int)
    assert RFC3339.match(doc["crl"]["fetched"])
    assert {n["name"] for n in doc["nodes"]} == {"ca", "alice", "bob"}
    for n in doc["nodes"]:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", n["address"])
        assert n["seconds_left"] > 6 * 86400
    assert {p["name"] for p in doc["peers"]} >= {"ca", "bob", "alice"} - {
        node.name}
    assert set(doc["counters"]) >= {"files_sent", "bytes_sent",
                                    "files_received", "bytes_received",
                                    "refused"}
    assert all(isinstance(v, int) for v in doc["counters"].values())


def test_status_follows_a_transfer(net, nodes, tmp_path):
    alice, bob = nodes
    # Counters count from the mount.
    remount(alice)
    # The first refresh from the CA follows the mount at once.
    assert wait_until(lambda: status_json(net, alice)["crl"]["fetched"], 30)
    doc = status_json(net, alice)
    check_schema(doc, alice, time.time())
    assert doc["counters"]["files_sent"] == 0
    assert peer(doc, "bob")["pending"] == []

    bob.unmount()
    files = {"a.csv": b"x" * 1000, "b.csv": b"y" * 70000}
    for name, data in files.items():
        alice.write_bytes("outbox/bob/" + name, data)

    def pending():
        p = peer(status_json(net, alice), "bob")
        return p if p["pending_files"] == 2 and p["last_error"] else None
    p = wait_until(pending, 30)
    assert p, status(net, alice).stdout
    assert p["pending_bytes"] == 71000
    assert {(f["path"], f["bytes"]) for f in p["pending"]} == {
        ("a.csv", 1000), ("b.csv", 70000)}
    for f in p["pending"]:
        assert f["state"] in ("queued", "failed", "sending"), f
        assert 0 <= f["percent"] <= 100
    assert p["last_delivery"] is None

    # Prometheus says the same, and parses strictly.
    text = status(net, alice, "--prometheus").stdout
    samples = parse_exposition(text)
    assert prom(samples, "snoopfs_pending_files", node="alice",
                peer="bob") == 2
    assert prom(samples, "snoopfs_pending_bytes", peer="bob") == 71000
    assert prom(samples, "snoopfs_peer_failing", peer="bob") == 1
    assert prom(samples, "snoopfs_files_sent_total", node="alice") == 0
    assert prom(samples, "snoopfs_certificate_seconds_left") > 6 * 86400
    assert prom(samples, "snoopfs_info", node="alice", role="node") == 1
    assert prom(samples, "snoopfs_node_certificate_seconds_left",
                name="bob") > 6 * 86400

    # Unmounting says what is left and that it goes at the next mount.
    alice.unmount()
    assert ("unmounted with 2 file(s) pending: 2 for bob; they go at the "
            "next mount") in log_text(alice)

    # It does: bob first, so that alice's first try reaches him.
    bob.mount()
    alice.mount()
    for name, data in files.items():
        wait_delivered(bob, alice, name, sha256_bytes(data))
    ok = wait_until(lambda: status_json(net, alice)["counters"][
        "files_sent"] == 2, 30)
    doc = status_json(net, alice)
    assert ok, doc["counters"]
    assert doc["counters"]["bytes_sent"] == 71000
    p = peer(doc, "bob")
    assert p["pending_files"] == 0 and p["pending"] == []
    assert p["last_error"] is None and RFC3339.match(p["last_delivery"])
    got = status_json(net, bob)["counters"]
    assert got["files_received"] >= 2 and got["bytes_received"] >= 71000
    samples = parse_exposition(status(net, alice, "--prometheus").stdout)
    assert prom(samples, "snoopfs_files_sent_total") == 2
    assert prom(samples, "snoopfs_bytes_sent_total") == 71000
    assert prom(samples, "snoopfs_pending_files", peer="bob") == 0
    assert prom(samples, "snoopfs_last_delivery_timestamp_seconds",
                peer="bob") > 0


def test_status_larger_than_a_page(net, nodes, tmp_path):
    """120 files pending for bob make a report of several pages."""
    alice, bob = nodes
    bob.unmount()
    src = tmp_path / "many"
    src.mkdir()
    for i in range(120):
        (src / ("pending-file-with-a-long-name-%03d.csv" % i)).write_text(
            "%d\n" % i)
    r = subprocess.run(["cp", "-r", str(src), str(alice.mnt / "outbox/bob/")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    def all_pending():
        return peer(status_json(net, alice), "bob")["pending_files"] >= 120
    assert wait_until(all_pending, 60)
    out = status(net, alice, "--json").stdout
    assert len(out) > PAGE
    p = peer(json.loads(out), "bob")
    assert len(p["pending"]) == 100  # listed; the rest only counted
    assert p["pending"][0]["path"].startswith("many/pending-file")
    parse_exposition(status(net, alice, "--prometheus").stdout)
    # getfattr reads the whole report by the plain name, as before.
    whole = os.getxattr(str(alice.mnt), "user.snoopfs.status.json")
    assert peer(json.loads(whole), "bob")["pending_files"] >= 120

    bob.mount()
    for i in (0, 119):
        name = "many/pending-file-with-a-long-name-%03d.csv" % i
        wait_delivered(bob, alice, name, sha256_bytes(b"%d\n" % i))


# --- item 7: say what happens ------------------------------------------------

def test_unmount_with_pending_files_under_f(net, nodes):
    alice, bob = nodes
    bob.unmount()
    alice.unmount()
    fg = net.snoop.popen("mount", alice.mnt, "--state", alice.state, "-f")
    try:
        assert wait_until(alice.is_mounted, MOUNT_TIMEOUT), "no -f mount"
        assert wait_until(lambda: alice.exists("outbox/bob"), 30)
        alice.write_bytes("outbox/bob/late.txt", b"late\n")
        assert wait_until(lambda: peer(status_json(net, alice), "bob")[
            "pending_files"] == 1, 30)
        assert fusermount_u(alice.mnt, lazy=False).returncode == 0
        _, err = fg.communicate(timeout=EXIT_TIMEOUT)
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.communicate()
    assert ("unmounted with 1 file(s) pending: 1 for bob; they go at the "
            "next mount") in err, err
    bob.mount()
    alice.mount()
    wait_delivered(bob, alice, "late.txt", sha256_bytes(b"late\n"))


def test_status_on_a_stale_mount(net, nodes):
    alice, _ = nodes
    pid = alice.signal(signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), EXIT_TIMEOUT)
    try:
        for flags in ((), ("--json",), ("--prometheus",)):
            r = status(net, alice, *flags, rc=2)
            assert r.stderr == (
                "snoopfs status: %s: a stale mount is left there by a "
                "snoopfs that did not exit cleanly; clear it with: "
                "fusermount3 -u -z %s\n" % (alice.mnt, alice.mnt)), r.stderr
        m = alice.mount(expect_rc=2)
        fix = "; clear it with: fusermount3 -u -z %s\n" % alice.mnt
        assert m.stderr.endswith(fix) and r.stderr.endswith(fix), m.stderr
    finally:
        fusermount_u(alice.mnt, lazy=True)
    alice.mount()


def test_errno_refusals_said_in_words(net, nodes, tmp_path):
    alice, _ = nodes
    src = tmp_path / "f.txt"
    src.write_text("f\n")
    before = len(log_text(alice))

    def fails(argv, code):
        r = subprocess.run([str(a) for a in argv], capture_output=True,
                           text=True, timeout=CMD_TIMEOUT)
        assert r.returncode != 0 and os.strerror(code) in r.stderr, (
            argv, r.stderr)

    fails(["cp", src, str(alice.mnt / "outbox/nobody") + "/"], errno.ENOTDIR)
    fails(["mkdir", alice.mnt / "outbox/alice"], errno.EINVAL)
    fails(["ln", "-s", "x", alice.mnt / "outbox/bob/link"], errno.EPERM)
    fails(["cp", src, alice.mnt / "inbox/"], errno.EACCES)
    fails(["cp", src, alice.mnt / "outbox/"], errno.EACCES)
    # A loop makes at most a line a second, then says what it held back.
    for _ in range(300):
        with pytest.raises(FileNotFoundError):
            os.stat(alice.mnt / "outbox/nobody2")
    time.sleep(1.2)
    with pytest.raises(FileNotFoundError):
        os.stat(alice.mnt / "outbox/nobody3")

    assert wait_until(lambda: "nobody3" in log_text(alice)[before:], 10)
    new = log_text(alice)[before:]
    for line in (
            "outbox/nobody: no such folder: no peer 'nobody': certs/ has "
            "no nobody.pem",
            "outbox/alice: no such folder: 'alice' is this node, and a node "
            "does not send to itself",
            "outbox/bob/link: only files and folders travel",
            "inbox/f.txt: inbox/ is read-only (rm consumes a file) "
            "(Permission denied)",
            "outbox/f.txt: a file goes into a peer's folder, "
            "outbox/PEER/NAME (Permission denied)"):
        assert line in new, (line, new)
    lines = [l for l in new.splitlines() if "no peer 'nobody" in l]
    assert 2 <= len(lines) <= 3, lines
    assert "more like this not shown" in lines[-1], lines
