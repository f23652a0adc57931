"""The outbox ships closed files without holding its lock (src/tree/outbox.c):
the seal of one file runs while programs create, replace and remove other
files, and the same file, on other FUSE threads.

* test_replace_and_remove_while_shipping: several writers each hammer a
  few paths of their own: write, then at once write the same path again,
  remove it, or rename a temporary file onto it, many rounds, with files
  from 1 KiB to 3 MiB (so some seals take long). Whatever the interleaving,
  the last version written of each path arrives whole, a removed path
  leaves nothing pending, nothing arrives that was not written whole, and
  alice's STATE drains. A design that let a re-create truncate or replace
  the file under a seal in progress, or put the marker over the new file,
  ships mixed bytes or loses the last version.
* test_parallel_writers_killed_exactly_once: eight writers close files as
  fast as they can while alice is killed (-9) in the middle of the flood;
  after the restart every file whose close() succeeded arrives exactly
  once and whole, whatever stage of shipping it was in.
* test_cp_r_many_small_files: one `cp -r` of 300 small files arrives whole.
"""

import hashlib
import os
import random
import threading
import time
import traceback

from snoopnodes import (DELIVERY_TIMEOUT, bounded, run_tool, tree_files,
                        wait_until)
from test_delivery_faults import pair

# A file's state right after close(2) (getfattr user.snoopfs.state): FUSE
# sends the release after close() returned, so "writing" for a moment, and
# never "held".
PENDING = ("writing", "queued", "sending", "failed", "delivered")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def state_files(node, sub):
    return tree_files(node.state / sub)


def drained(alice):
    return (not alice.files("outbox/bob") and not state_files(alice, "jobs")
            and not state_files(alice, "sealed")
            and not state_files(alice, "outbox"))


def wait_drained(alice, timeout=DELIVERY_TIMEOUT):
    assert wait_until(lambda: drained(alice), timeout, interval=0.5), (
        "alice did not drain: outbox %s, jobs %s, sealed %s, STATE/outbox %s"
        "\nlog:\n%s" % (alice.files("outbox/bob"), state_files(alice, "jobs"),
                        state_files(alice, "sealed"),
                        state_files(alice, "outbox"), alice.log_tail()))


def version(name, k, rng):
    """Version K of NAME: tagged, so mixed bytes are never mistaken."""
    size = rng.choice([0, 1000, 4096, 65537, 300 << 10, 1 << 20, 3 << 20])
    tag = ("%s v%d\n" % (name, k)).encode()
    return (tag + os.urandom(size))


def remove(path):
    """rm PATH; a file delivered already has left the outbox by itself."""
    try:
        bounded(os.unlink, path)
    except FileNotFoundError:
        pass


def write(path, data):
    def go():
        with open(path, "wb") as f:
            f.write(data)
    bounded(go, timeout=120, what="write %s" % path)


# --- replace and remove while shipping ------------------------------------------

WRITERS = 4
NAMES_PER_WRITER = 3
ROUNDS = 6


class Hammer:
    def __init__(self, alice, seed):
        self.alice = alice
        self.root = str(alice.mnt / "outbox/bob")
        self.seed = seed
        self.versions = {}       # name -> [sha of every version written]
        self.final = {}          # name -> sha of the last version, or None
        self.states = []         # (name, state) seen right after a close
        self.errors = []
        self.lock = threading.Lock()

    def run(self, w):
        rng = random.Random(self.seed * 100 + w)
        try:
            for n in range(NAMES_PER_WRITER):
                name = "w%d-n%d.bin" % (w, n)
                path = os.path.join(self.root, name)
                k = 0
                for r in range(ROUNDS):
                    data = version(name, k, rng)
                    k += 1
                    with self.lock:
                        self.versions.setdefault(name, []).append(sha(data))
                    write(path, data)
                    if rng.random() < 0.3:
                        try:
                            st = bounded(os.getxattr, path,
                                         "user.snoopfs.state").decode()
                            self.states.append((name, st))
                        except FileNotFoundError:
                            pass
                    # At once, while it is most likely being sealed:
                    op = rng.choice(("rewrite", "unlink", "rename"))
                    if op == "unlink":
                        remove(path)
                        self.final[name] = None
                        continue
                    data = version(name, k, rng)
                    k += 1
                    with self.lock:
                        self.versions[name].append(sha(data))
                    if op == "rewrite":
                        write(path, data)
                    else:
                        # An in-progress name, renamed onto the file.
                        tmp = os.path.join(self.root, ".%s.part" % name)
                        write(tmp, data)
                        bounded(os.rename, tmp, path)
                    self.final[name] = sha(data)
                # Most paths end with a version that must arrive; one
                # per writer ends removed.
                if n == 0 and self.final[name] is not None:
                    remove(path)
                    self.final[name] = None
        except BaseException:
            self.errors.append("writer %d: %s" % (w, traceback.format_exc()))


def test_replace_and_remove_while_shipping(cluster):
    alice, bob = pair(cluster)
    h = Hammer(alice, int.from_bytes(os.urandom(4), "big"))
    threads = [threading.Thread(target=h.run, args=(w,), daemon=True)
               for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
        assert not t.is_alive(), "a writer is stuck\nlog:\n%s" % alice.log_tail()
    assert not h.errors, "\n".join(h.errors)
    bad = [(n, s) for n, s in h.states if not s.startswith(PENDING)]
    assert not bad, "states right after close: %s" % bad
    wait_drained(alice)

    want = {n: s for n, s in h.final.items() if s is not None}

    def arrived():
        got = bob.inbox_files("alice")
        return all(n in got for n in want) and all(
            sha(bounded(lambda: open(str(bob.mnt / "inbox/alice" / n),
                                     "rb").read())) == s
            for n, s in want.items())
    def which():
        """name -> (version in the inbox, the last one) by index."""
        got = {}
        for n, s in want.items():
            try:
                data = bounded(lambda: open(str(bob.mnt / "inbox/alice" / n),
                                            "rb").read())
                k = h.versions[n].index(sha(data)) if sha(data) in h.versions[n] else "?"
            except FileNotFoundError:
                k = None
            got[n] = (k, h.versions[n].index(s))
        return got
    assert wait_until(arrived, DELIVERY_TIMEOUT, interval=0.5), (
        "the last versions did not all arrive (in the inbox, last): %s"
        "\nalice log:\n%s" % (which(), alice.log_tail(200)))
    # Nothing else: a removed path shows at most a version written whole
    # before it was removed, and no stray name ever shows.
    for name in bob.inbox_files("alice"):
        assert name in h.versions, "stray file in the inbox: %s" % name
        data = bounded(lambda: open(str(bob.mnt / "inbox/alice" / name),
                                    "rb").read())
        assert sha(data) in h.versions[name], (
            "%s arrived with bytes that were never written as a whole "
            "(%d bytes)" % (name, len(data)))


# --- a flood of parallel closes cut by kill -9 -------------------------------------

FLOOD_WRITERS = 8


def test_parallel_writers_killed_exactly_once(cluster):
    alice, bob = pair(cluster)
    root = str(alice.mnt / "outbox/bob")
    content = {}
    accepted = set()
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        rng = random.Random()
        i = 0
        while not stop.is_set():
            name = "p%d-%03d.bin" % (w, i)
            i += 1
            data = name.encode() + os.urandom(rng.choice([1000, 1024, 20000,
                                                          70000]))
            with lock:
                content[name] = data
            try:
                with open(os.path.join(root, name), "wb") as f:
                    f.write(data)
            except OSError:
                return      # alice is gone
            with lock:
                accepted.add(name)

    threads = [threading.Thread(target=writer, args=(w,), daemon=True)
               for w in range(FLOOD_WRITERS)]
    for t in threads:
        t.start()
    # Kill in the thick of it: closes done, seals and records in flight.
    assert wait_until(lambda: len(accepted) >= 120, 120, interval=0.01), (
        "only %d files written" % len(accepted))
    alice.crash()
    stop.set()
    for t in threads:
        t.join(60)
    alice.restart()
    with lock:
        acc = set(accepted)
    # Files cut in the middle of their write were never accepted: they
    # stay, held, until removed (as a user would).
    for name in alice.files("outbox/bob"):
        try:
            st = alice.getxattr("outbox/bob/" + name)
        except OSError:
            continue        # delivered since it was listed
        if name in acc:
            assert not st.startswith("held"), "accepted %s: %s" % (name, st)
        elif st.startswith("held"):
            remove(str(alice.mnt / "outbox/bob" / name))
    wait_drained(alice)

    def all_there():
        return acc <= set(bob.inbox_files("alice"))
    assert wait_until(all_there, DELIVERY_TIMEOUT, interval=0.5), (
        "accepted files missing in bob's inbox: %s"
        % sorted(acc - set(bob.inbox_files("alice")))[:20])
    time.sleep(1)
    log = bob.log.read_text(errors="replace")
    for name in bob.inbox_files("alice"):
        assert name in content, "stray file in the inbox: %s" % name
        data = bounded(lambda: open(str(bob.mnt / "inbox/alice" / name),
                                    "rb").read())
        assert data == content[name], "%s arrived with wrong bytes" % name
        n = log.count("received '%s' from 'alice'" % name)
        assert n == 1, "%s was delivered %d times" % (name, n)
    alog = alice.log.read_text(errors="replace")
    print("accepted %d, arrived %d; at the restart: %d finished (job, no "
          "marker), %d empty removed" % (
              len(acc), len(bob.inbox_files("alice")),
              alog.count("before a crash"), alog.count("an empty file left")))


# --- one cp -r of many small files ----------------------------------------------

def test_cp_r_many_small_files(cluster, tmp_path):
    alice, bob = pair(cluster)
    src = tmp_path / "many"
    src.mkdir()
    want = {}
    for i in range(300):
        data = os.urandom(1024)
        (src / ("f%03d" % i)).write_bytes(data)
        want["t/f%03d" % i] = sha(data)
    r = run_tool(["cp", "-r", str(src), str(alice.mnt / "outbox/bob/t")],
                 timeout=300)
    assert r.returncode == 0, r.stderr

    def arrived():
        return set(bob.inbox_files("alice")) >= set(want)
    assert wait_until(arrived, DELIVERY_TIMEOUT, interval=0.5), (
        "missing: %s" % sorted(set(want) - set(bob.inbox_files("alice")))[:20])
    for rel, s in want.items():
        got = bounded(lambda: open(str(bob.mnt / "inbox/alice" / rel),
                                   "rb").read())
        assert sha(got) == s, rel
    assert wait_until(lambda: not alice.files("outbox/bob"), DELIVERY_TIMEOUT,
                      interval=0.5), alice.files("outbox/bob")
