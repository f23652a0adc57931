"""snoopnodes: helpers that run snoopfs nodes for the black-box tests.

The tests drive the real binary (SNOOPFS_BIN, default <repo>/build/snoopfs)
on 127.0.0.1: they run `snoopfs ca-init`, mount a CA node and ordinary nodes
in temporary directories, and talk to them through the mounted tree, the
command line and the raw wire protocol (snoopwire.py).

Rules every helper keeps:

* every wait and every subprocess has a timeout;
* whatever a fixture mounted is unmounted (`fusermount3 -u -z`) and every
  daemon it started is waited for, and killed by PID only if it lingers;
* a test fails if any snoopfs process printed a sanitizer report (ASan,
  UBSan, LSan), whether on stderr, in STATE/snoopfs.log, or in the files
  that ASAN_OPTIONS/UBSAN_OPTIONS log_path points into.
"""

import contextlib
import os
import random
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import threading

import pytest

import snoopwire

REPO = Path(__file__).resolve().parents[2]
SNOOPFS_BIN = Path(os.environ.get("SNOOPFS_BIN", str(REPO / "build" / "snoopfs")))

# SNOOPFS_WRAPPER: a command every snoopfs process runs under (scripts/valgrind
# sets valgrind there); SNOOPFS_TIMEOUT_SCALE stretches the timeouts below
# for such slow runs.
WRAPPER = os.environ.get("SNOOPFS_WRAPPER", "").split()
TIMEOUT_SCALE = float(os.environ.get("SNOOPFS_TIMEOUT_SCALE", "1"))

HOST = "127.0.0.1"
CMD_TIMEOUT = 60 * TIMEOUT_SCALE    # any one snoopfs command (RSA key generation included)
MOUNT_TIMEOUT = 90 * TIMEOUT_SCALE  # a mount that enrolls (under ASan this is slow)
EXIT_TIMEOUT = 10 * TIMEOUT_SCALE   # a daemon leaving after unmount or SIGTERM
PEER_TIMEOUT = 15 * TIMEOUT_SCALE   # nodes learning about each other

# Sanitizer reports. The log module writes "error:" in lower case, so the
# upper-case "ERROR: " that sanitizers print does not collide with it.
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                     "MemorySanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:", "ERROR: ")

FP_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# A join token: "snp1." and base64url of 72 bytes (src/ca/token.h).
TOKEN_RE = re.compile(r"^snp1\.[A-Za-z0-9_-]{96}$")


# --- small helpers -----------------------------------------------------------

def wait_until(pred, timeout, interval=0.1):
    """Polls PRED until it returns a true value or TIMEOUT seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


_ports_given = set()
# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by
# default): a port taken from that range can be handed, a moment later, to
# the local end of some outgoing connection (the tests open thousands), and
# then a node that listens on it fails with "Address already in use".
_PORTS_LOW, _PORTS_HIGH = 20000, 32000


def _port_free(port):
    """Whether PORT can be bound now on every address (a node may listen
    on 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def free_port():
    """A TCP port, outside the ephemeral range, that was free a moment ago
    (never handed out twice by this process)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(1000):
        port = rng.randrange(_PORTS_LOW, _PORTS_HIGH)
        if port not in _ports_given and _port_free(port):
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port found")


def sanitizer_hits(text):
    """The lines of TEXT that look like a sanitizer report."""
    return [line for line in text.splitlines()
            if any(m in line for m in SANITIZER_MARKERS)]


class Hung(AssertionError):
    """A call into a mounted tree that did not return in time."""


def bounded(fn, *args, timeout=20 * TIMEOUT_SCALE, what=None):
    """Calls FN(*ARGS) on a helper thread and gives up after TIMEOUT seconds.

    A FUSE daemon that stops answering would block a plain open() or
    listdir() for ever; this keeps every test bounded. The stuck thread is
    released when teardown unmounts and, if need be, kills the daemon.
    """
    box = {}

    def call():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # handed to the caller below
            box["error"] = e
    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Hung("%s did not return within %d s" % (
            what or getattr(fn, "__name__", "call"), timeout))
    if "error" in box:
        raise box["error"]
    return box["value"]


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _unescape_mount(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounted_paths():
    """Mount points from /proc/self/mountinfo (mount namespace of the tests)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 4:
                out.add(_unescape_mount(parts[4]))
    return out


def is_mounted(path):
    return str(Path(path)) in mounted_paths()


def pid_alive(pid):
    """True if PID runs and is not a zombie (daemons are not our children)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = data[data.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def pid_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def is_our_daemon(pid, mnt=None):
    """True if PID runs snoopfs (and, given MNT, names MNT on its command line).

    This guards against a PID that was reused by an unrelated process.
    """
    argv = pid_cmdline(pid)
    # Under SNOOPFS_WRAPPER (valgrind) the binary follows the wrapper and
    # its options.
    if argv and WRAPPER and os.path.basename(argv[0]).startswith("valgrind"):
        argv = [a for a in argv[1:] if not a.startswith("-")]
    if not argv or "snoopfs" not in os.path.basename(argv[0]):
        return False
    return mnt is None or str(mnt) in argv


def find_daemons(mnt):
    """PIDs of snoopfs processes whose command line names MNT."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_alive(int(entry)) and is_our_daemon(int(entry), mnt):
            pids.append(int(entry))
    return pids


def fusermount_u(mnt, lazy=True, timeout=CMD_TIMEOUT):
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [str(mnt)]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def openssl(*args, timeout=CMD_TIMEOUT, **kw):
    return subprocess.run(["openssl", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


ASAN_ORDER_OK = ":verify_asan_link_order=0"


def preload(env, lib):
    """Preloads LIB (libfaketime, nss_wrapper) into the snoopfs processes
    ENV starts, or stops preloading (LIB None)."""
    asan = env.get("ASAN_OPTIONS", "").replace(ASAN_ORDER_OK, "")
    if lib is None:
        env.pop("LD_PRELOAD", None)
        env["ASAN_OPTIONS"] = asan
        return
    env["LD_PRELOAD"] = lib
    # Under ASan the preloaded library comes before the ASan runtime,
    # which ASan refuses unless told that the order is intended.
    env["ASAN_OPTIONS"] = asan + ASAN_ORDER_OK


preload_faketime = preload     # its older name


def genkey(path, bits=2048):
    """An RSA key made with openssl, mode 0600, as an operator would."""
    r = openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:%d" % bits, "-out", str(path))
    assert r.returncode == 0, r.stderr
    os.chmod(path, 0o600)


def strip_time_left(text):
    """Summary text with the relative "(... left)" part of "Not after" cut."""
    return re.sub(r"\([^()\n]*\bleft\)", "(left)", text).rstrip("\n")


def serial_int(text):
    """The integer of a hex serial as inspect prints it ("0A1B" or "0A:1B")."""
    return int(text.replace(":", ""), 16)


def summary_fields(text):
    """`snoopfs inspect` text as {field: value}, e.g. {"Subject": "CN=bob"}."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and k == k.lstrip():
            out.setdefault(k.strip(), v.strip())
    return out


# --- the binary --------------------------------------------------------------

class Snoop:
    """Runs the snoopfs binary and collects sanitizer reports.

    SAN_DIR receives ASan/UBSan report files (log_path), so reports from
    daemons, whose stderr is gone once they detach, are not lost.
    """

    def __init__(self, binary, san_dir):
        self.binary = Path(binary)
        self.san_dir = Path(san_dir)
        self.san_dir.mkdir(parents=True, exist_ok=True)
        self.hits = []
        self.env = dict(os.environ)
        for var, prefix in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan")):
            old = self.env.get(var, "")
            opt = "log_path=%s" % (self.san_dir / prefix)
            self.env[var] = (old + ":" + opt) if old else opt
        self.env.setdefault("LC_ALL", "C.UTF-8")

    def run(self, *args, timeout=CMD_TIMEOUT, input=None, prefix=()):
        """Runs `snoopfs ARGS...`; returns the CompletedProcess (text).
        PREFIX is a command it runs under (netns.py: nsenter --net=...)."""
        argv = (list(prefix) + WRAPPER + [str(self.binary)]
                + [str(a) for a in args])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=self.env, input=input, stdin=None if input
                           else subprocess.DEVNULL)
        hits = sanitizer_hits(r.stdout) + sanitizer_hits(r.stderr)
        assert not hits, "sanitizer report from %s:\n%s" % (
            " ".join(argv), r.stderr)
        return r

    def popen(self, *args, prefix=()):
        argv = (list(prefix) + WRAPPER + [str(self.binary)]
                + [str(a) for a in args])
        return subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env,
                                stdin=subprocess.DEVNULL)

    def sanitizer_reports(self, extra_logs=()):
        """Problems found in the sanitizer files and in EXTRA_LOGS."""
        problems = []
        for f in sorted(self.san_dir.glob("*")):
            text = f.read_text(errors="replace")
            if text.strip():
                problems.append("sanitizer report %s:\n%s" % (f, text[:4000]))
        for log in extra_logs:
            log = Path(log)
            if log.exists():
                hits = sanitizer_hits(log.read_text(errors="replace"))
                if hits:
                    problems.append("sanitizer output in %s:\n%s" % (
                        log, "\n".join(hits[:40])))
        return problems


# --- nodes and clusters ------------------------------------------------------

# Every mount point any fixture made, so the session can sweep up after a
# fixture that could not finish its own teardown.
_all_mountpoints = []


def all_mountpoints():
    return list(_all_mountpoints)


class Node:
    """One snoopfs node: its STATE, its mount point, its address and daemon.

    HOST is the address peers reach it at; it listens there too, or on
    LISTEN_HOST if given (0.0.0.0 with --advertise HOST:PORT); PREFIX a
    command its daemon starts under, e.g. nsenter into the network
    namespace that has HOST (netns.py).
    """

    def __init__(self, snoop, name, base, port, is_ca=False, host=HOST,
                 prefix=(), listen_host=None):
        self.snoop = snoop
        self.name = name
        self.state = Path(base) / ("%s-state" % name)
        self.mnt = Path(base) / ("%s-mnt" % name)
        self.mnt.mkdir(parents=True)
        self.mnt = self.mnt.resolve()
        self.host = host
        self.listen_host = listen_host or host
        self.port = port
        self.prefix = list(prefix)
        self.is_ca = is_ca
        self.pids = set()      # every daemon PID seen for this node
        self.fingerprint = None
        _all_mountpoints.append(self.mnt)

    def __repr__(self):
        return "<Node %s %s>" % (self.name, self.addr)

    @property
    def addr(self):
        """The address peers use (the certificate's)."""
        return "%s:%d" % (self.host, self.port)

    @property
    def listen_args(self):
        """--listen, and --advertise where the node binds elsewhere."""
        bind = "%s:%d" % (self.listen_host, self.port)
        return (["--listen", bind] if bind == self.addr
                else ["--listen", bind, "--advertise", self.addr])

    @property
    def certs(self):
        return self.mnt / "certs"

    @property
    def log(self):
        return self.state / "snoopfs.log"

    def is_mounted(self):
        return is_mounted(self.mnt)

    def read_pid(self):
        """The daemon's PID from STATE/snoopfs.pid, else from /proc."""
        try:
            pid = int((self.state / "snoopfs.pid").read_text().split()[0])
            if pid_alive(pid) and is_our_daemon(pid):
                return pid
        except (OSError, ValueError, IndexError):
            pass
        pids = find_daemons(self.mnt)
        return pids[0] if pids else None

    def mount(self, *extra, expect_rc=0, timeout=MOUNT_TIMEOUT):
        """Runs `snoopfs mount`. On expect_rc 0, waits for the tree."""
        try:
            r = self.snoop.run("mount", self.mnt, "--state", self.state, *extra,
                               timeout=timeout, prefix=self.prefix)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "snoopfs mount %s did not return within %d s (a daemon that "
                "keeps stdout/stderr open also causes this)\nlog: %s"
                % (self.name, timeout, self.log_tail())) from None
        if expect_rc is None:
            return r
        assert r.returncode == expect_rc, (
            "snoopfs mount %s exited %d, wanted %d\nstdout: %s\nstderr: %s\nlog: %s"
            % (self.name, r.returncode, expect_rc, r.stdout, r.stderr,
               self.log_tail()))
        if expect_rc == 0:
            assert wait_until(self.is_mounted, 5), "%s not in mountinfo" % self.mnt
            assert wait_until(lambda: self.exists("certs/root.pem"), 10), (
                "certs/root.pem missing after mount")
            pid = wait_until(self.read_pid, 5)
            assert pid, "cannot find the daemon of %s" % self.mnt
            self.pids.add(pid)
        return r

    def enroll(self, ca, fingerprint=None, pregen_key=True, extra=(),
               token=None, expect_rc=0):
        """First mount: enrolls with CA (a Node) using --name/--listen/--ca.

        TOKEN (from Cluster.token) goes in --join, FINGERPRINT in
        --ca-fingerprint; a node needs at least one of them (no trust on
        first use), and a CA made without --open-enrollment needs TOKEN.
        """
        if pregen_key:
            self.state.mkdir(mode=0o700)
            genkey(self.state / "node.key")
        args = ["--name", self.name] + self.listen_args + ["--ca", ca.addr]
        if token:
            args += ["--join", token]
        if fingerprint:
            args += ["--ca-fingerprint", fingerprint]
        return self.mount(*args, *extra, expect_rc=expect_rc)

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        """True once every daemon PID of this node has exited."""
        return wait_until(lambda: not any(pid_alive(p) for p in self.pids), timeout)

    def unmount(self, lazy=False):
        """Unmounts like an operator would and waits for the daemon to leave."""
        r = fusermount_u(self.mnt, lazy=lazy)
        assert r.returncode == 0, "fusermount3 -u %s: %s" % (self.mnt, r.stderr)
        assert self.wait_exit(), "daemon of %s still runs after unmount" % self.name
        assert not self.is_mounted()

    def signal(self, sig):
        pid = self.read_pid()
        assert pid, "no daemon for %s" % self.name
        self.pids.add(pid)
        os.kill(pid, sig)
        return pid

    # Reads from the mounted tree, each bounded in time.

    def listdir(self, rel="."):
        return sorted(bounded(os.listdir, str(self.mnt / rel),
                              what="listdir %s/%s" % (self.name, rel)))

    def exists(self, rel):
        return bounded(os.path.exists, str(self.mnt / rel),
                       what="stat %s/%s" % (self.name, rel))

    def read_bytes(self, rel):
        return bounded(lambda: (self.mnt / rel).read_bytes(),
                       what="read %s/%s" % (self.name, rel))

    def read_text(self, rel):
        return self.read_bytes(rel).decode("utf-8")

    def cert_names(self):
        """Names N with certs/N.pem (root.pem and crl.pem excluded)."""
        try:
            entries = self.listdir("certs")
        except OSError:
            return set()
        return {e[:-4] for e in entries if e.endswith(".pem")} - {"root", "crl"}

    def cert(self, name):
        return snoopwire.load_cert(self.read_bytes("certs/%s.pem" % name))

    def root(self):
        return self.cert("root")

    def log_tail(self, n=30):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def teardown(self):
        """Unmounts and stops whatever runs; returns a list of problems."""
        problems = []
        # A loop, because a mount over a stale one stacks two mounts.
        for _ in range(3):
            if not self.is_mounted():
                break
            pid = self.read_pid()
            if pid:
                self.pids.add(pid)
            r = fusermount_u(self.mnt, lazy=True)
            if r.returncode != 0 and self.is_mounted():
                problems.append("fusermount3 -u -z %s failed: %s" % (self.mnt, r.stderr))
                break
        self.pids.update(find_daemons(self.mnt))
        if not self.wait_exit():
            problems.append("daemon(s) %s of %s did not exit within %d s of "
                            "unmounting" % (sorted(self.pids), self.name, EXIT_TIMEOUT))
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in self.pids:
                    if pid_alive(pid) and is_our_daemon(pid):
                        try:
                            os.kill(pid, sig)
                        except ProcessLookupError:
                            pass
                if self.wait_exit(5):
                    break
        return problems


class Cluster:
    """A CA node and ordinary nodes, all on 127.0.0.1, under BASE."""

    def __init__(self, snoop, base):
        self.snoop = snoop
        self.base = Path(base)
        self.nodes = {}
        self.ca = None
        self.fingerprint = None

    def init_ca(self, name="ca", mount=True, extra=(), open_enrollment=False,
                host=HOST, port=None, prefix=(), listen_host=None):
        """ca-init (and mount). OPEN_ENROLLMENT: nodes need no token.
        HOST, PORT (default a free one), PREFIX and LISTEN_HOST as for
        Node."""
        node = Node(self.snoop, name, self.base, port or free_port(),
                    is_ca=True, host=host, prefix=prefix,
                    listen_host=listen_host)
        self.nodes[name] = node
        if open_enrollment:
            extra = ("--open-enrollment",) + tuple(extra)
        r = self.snoop.run("ca-init", node.state, "--name", name,
                           *node.listen_args, *extra)
        assert r.returncode == 0, "ca-init: %s" % r.stderr
        self.fingerprint = r.stdout.strip()
        assert FP_RE.match(self.fingerprint), r.stdout
        node.fingerprint = self.fingerprint
        self.ca = node
        if mount:
            node.mount()
        return node

    def token(self, name, ttl=None):
        """A fresh one-time join token for NAME from `snoopfs token`."""
        args = ["token", self.ca.state, name]
        if ttl is not None:
            args += ["--ttl", str(ttl)]
        r = self.snoop.run(*args)
        assert r.returncode == 0, "snoopfs token: %s" % r.stderr
        tok = r.stdout.splitlines()[0].strip()
        assert TOKEN_RE.match(tok), r.stdout
        return tok

    def add_node(self, name, pregen_key=True, fingerprint=True, extra=(),
                 token=True, host=HOST, port=None, prefix=(),
                 listen_host=None):
        """A new node enrolled with the CA and mounted.

        TOKEN True (the default): a fresh token from `snoopfs token`, which
        also pins the CA; a string: that token; False: none, and then
        FINGERPRINT True pins the CA with --ca-fingerprint (which only an
        --open-enrollment CA accepts). HOST, PORT (default a free one),
        PREFIX and LISTEN_HOST as for Node.
        """
        node = Node(self.snoop, name, self.base, port or free_port(),
                    host=host, prefix=prefix, listen_host=listen_host)
        self.nodes[name] = node
        if token is True:
            token = self.token(name)
        pin = self.fingerprint if fingerprint and not token else None
        node.enroll(self.ca, pin, pregen_key=pregen_key, extra=extra,
                    token=token or None)
        return node

    def names(self):
        return set(self.nodes)

    def wait_all_know_all(self, timeout=PEER_TIMEOUT):
        """Waits until every mounted node lists every node's certificate."""
        want = self.names()

        def done():
            return all(n.cert_names() >= want for n in self.nodes.values()
                       if n.is_mounted())
        ok = wait_until(done, timeout, interval=0.2)
        assert ok, "after %d s: %s" % (timeout, {
            n.name: sorted(n.cert_names()) for n in self.nodes.values()})

    def teardown(self):
        problems = []
        # Ordinary nodes first, so that the CA is the last to go.
        order = sorted(self.nodes.values(), key=lambda n: n.is_ca)
        for node in order:
            problems += node.teardown()
        logs = [n.log for n in self.nodes.values()]
        problems += self.snoop.sanitizer_reports(logs)
        return problems


def dead_addr():
    """An address where nobody listens, for clients that never serve."""
    return "127.0.0.1:%d" % free_port()


def build_ca_and(*names):
    """A BUILD for module_cluster: the CA "ca" and the nodes NAMES, all
    knowing each other."""
    def build(c):
        c.init_ca("ca")
        for name in names:
            c.add_node(name)
        c.wait_all_know_all()
    return build


build_ca_and_alice = build_ca_and("alice")


def module_cluster(tmp_path_factory, snoopfs_bin, label, build):
    """Body of a module-scoped cluster fixture (use with `yield from`).

    BUILD(cluster) populates the cluster. Teardown unmounts everything and
    fails on sanitizer output, as the function-scoped fixture does.
    """
    base = tmp_path_factory.mktemp(label)
    c = Cluster(Snoop(snoopfs_bin, base / "sanitizer"), base / "c")
    c.base.mkdir()
    try:
        build(c)
        yield c
    except BaseException as e:
        # Setup failed: sanitizer reports are usually the reason, so they
        # must not be lost behind the first symptom.
        problems = c.teardown()
        if problems:
            pytest.fail("%s: %s\n\n%s" % (type(e).__name__, e,
                                          "\n\n".join(problems)), pytrace=False)
        raise
    problems = c.teardown()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# --- file delivery (outbox/ -> inbox/) ---------------------------------------
#
# Helpers for test_delivery*.py. A delivery is watched from outside only:
# the receiver's inbox/SENDER/PATH through its mount, the sender's outbox
# listing and xattrs, and the files under each STATE.

import hashlib

DELIVERY_TIMEOUT = 90 * TIMEOUT_SCALE   # a small file reaching a peer that is up (retries back off to 60 s)
BIG_TIMEOUT = 900       # the 1 GiB file: write, seal, send, verify (ASan is slow)
TOOL_TIMEOUT = 120      # cp, rsync, tar, dd on small files
STATE_XATTR = "user.snoopfs.state"
TEMP_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".part")


def run_tool(argv, timeout=TOOL_TIMEOUT, **kw):
    """Runs a shell tool (cp, rsync, ...) with a timeout; returns the result."""
    try:
        return subprocess.run([str(a) for a in argv], capture_output=True,
                              text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired:
        raise Hung("%s did not finish within %d s" % (
            " ".join(str(a) for a in argv), timeout)) from None


def sha256_file(path, limit=None):
    """Hex SHA-256 of the file at PATH (read in 1 MiB pieces)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def is_temp_name(rel):
    """True for a path that snoopfs must never ship (CONTRACT.md)."""
    parts = str(rel).split("/")
    return (any(p.startswith(".") for p in parts if p)
            or parts[-1].endswith(TEMP_SUFFIXES))


def tree_files(root):
    """{relative path: size} of every regular file under ROOT (not bounded)."""
    out = {}
    root = str(root)
    for dirpath, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[os.path.relpath(p, root)] = st.st_size
    return out


def make_tree(base, spec):
    """Writes SPEC ({relative path: bytes}) under BASE; returns BASE."""
    base = Path(base)
    for rel, data in spec.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return base


def files_containing(roots, needles, skip_dirs=()):
    """Files under ROOTS (STATE dirs) whose bytes contain any of NEEDLES.

    Every regular file is read in full, in overlapping pieces, so a needle
    that spans two pieces is still found. Returns [(path, needle)].
    """
    needles = [n.encode() if isinstance(n, str) else n for n in needles]
    overlap = max(len(n) for n in needles) - 1
    hits = []
    for root in roots:
        for dirpath, dirs, files in os.walk(str(root)):
            dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in skip_dirs]
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    if not stat.S_ISREG(os.lstat(p).st_mode):
                        continue
                    with open(p, "rb") as fh:
                        tail = b""
                        found = None
                        while found is None:
                            block = fh.read(8 << 20)
                            if not block:
                                break
                            data = tail + block
                            for n in needles:
                                if n in data:
                                    found = n
                                    break
                            tail = data[-overlap:] if overlap else b""
                except OSError:
                    continue
                if found is not None:
                    hits.append((p, found))
    return hits


def _node_write_bytes(self, rel, data, timeout=60):
    """Writes DATA to MNT/REL in one open/write/close, bounded."""
    def write():
        with open(str(self.mnt / rel), "wb") as f:
            f.write(data)
    bounded(write, timeout=timeout, what="write %s/%s" % (self.name, rel))


def _node_getxattr(self, rel, name=STATE_XATTR):
    """The xattr NAME of MNT/REL as text (bounded)."""
    v = bounded(os.getxattr, str(self.mnt / rel), name,
                what="getxattr %s/%s" % (self.name, rel))
    return v.decode("utf-8", errors="replace").rstrip("\0")


def _node_files(self, rel):
    """{relative path: size} of the files under MNT/REL ({} if it is missing)."""
    def walk():
        if not os.path.isdir(str(self.mnt / rel)):
            return {}
        return tree_files(self.mnt / rel)
    return bounded(walk, what="walk %s/%s" % (self.name, rel))


def _node_inbox_files(self, sender):
    return self.files("inbox/%s" % sender)


def _node_hash(self, rel, timeout=60):
    return bounded(sha256_file, str(self.mnt / rel), timeout=timeout,
                   what="sha256 %s/%s" % (self.name, rel))


def _node_crash(self):
    """kill -9 of the daemon, then a lazy unmount of the dead mount."""
    pid = self.signal(signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), EXIT_TIMEOUT), (
        "daemon %d of %s survived SIGKILL" % (pid, self.name))
    if self.is_mounted():
        fusermount_u(self.mnt, lazy=True)
    assert wait_until(lambda: not self.is_mounted(), 5), (
        "%s still mounted after kill -9 and fusermount3 -u -z" % self.mnt)
    return pid


def _node_restart(self, timeout=MOUNT_TIMEOUT):
    """A later mount: everything comes from STATE."""
    return self.mount(timeout=timeout)


Node.write_bytes = _node_write_bytes
Node.getxattr = _node_getxattr
Node.files = _node_files
Node.inbox_files = _node_inbox_files
Node.hash = _node_hash
Node.crash = _node_crash
Node.restart = _node_restart


def wait_delivered(receiver, sender, rel, sha256, size=None,
                   timeout=DELIVERY_TIMEOUT, hash_timeout=60):
    """Waits until RECEIVER's inbox/SENDER/REL has SHA256; fails otherwise.

    SIZE (if known) saves hashing a file that cannot be right yet.
    """
    path = "inbox/%s/%s" % (sender.name if isinstance(sender, Node) else sender, rel)
    last = {"seen": None}

    def arrived():
        try:
            st = bounded(os.stat, str(receiver.mnt / path), what="stat " + path)
        except OSError as e:
            last["seen"] = "stat: %s" % e
            return False
        if size is not None and st.st_size != size:
            last["seen"] = "size %d, want %d" % (st.st_size, size)
            return False
        try:
            got = receiver.hash(path, timeout=hash_timeout)
        except OSError as e:
            last["seen"] = "read: %s" % e
            return False
        last["seen"] = "sha256 %s" % got
        return got == sha256
    ok = wait_until(arrived, timeout, interval=0.25)
    assert ok, ("%s/%s not delivered within %d s (last seen: %s)\n"
                "receiver log:\n%s" % (receiver.name, path, timeout,
                                       last["seen"], receiver.log_tail()))


def wait_outbox_gone(sender, folder, rel, timeout=DELIVERY_TIMEOUT):
    """Waits until SENDER's outbox/FOLDER/REL is no longer listed."""
    path = "outbox/%s/%s" % (folder, rel)
    ok = wait_until(lambda: not sender.exists(path), timeout, interval=0.25)
    assert ok, "%s/%s still pending after %d s (state %r)\nlog:\n%s" % (
        sender.name, path, timeout, _safe_state(sender, path), sender.log_tail())


def _safe_state(node, path):
    try:
        return node.getxattr(path)
    except (OSError, AssertionError) as e:
        return "getxattr: %s" % e


class InboxWatcher:
    """Polls a receiver's inbox/SENDER every INTERVAL s on a thread.

    Records every (path, size) ever seen, so a test can check that no
    temporary name and no partial file was ever visible. Errors (a receiver
    that is down) are counted, not raised.
    """

    def __init__(self, node, sender, interval=0.05):
        self.root = node.mnt / "inbox" / sender
        self.interval = interval
        self.seen = {}          # path -> set of sizes
        self.errors = 0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self):
        try:
            for rel, size in tree_files(self.root).items():
                self.seen.setdefault(rel, set()).add(size)
        except OSError:
            self.errors += 1
        self.polls += 1

    def _run(self):
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self, timeout=30):
        """Stops polling, then looks once more: a file that arrived after
        the last poll (the test saw it first) is still recorded."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise Hung("the inbox watcher on %s is stuck" % self.root)
        self._poll()


# --- a node whose STATE is a small tmpfs (disk-full tests) --------------------

def tmpfs_mount(path, size):
    return subprocess.run(["mount", "-t", "tmpfs", "-o",
                           "size=%s,mode=0700" % size, "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=CMD_TIMEOUT)


def tmpfs_umount(path):
    r = subprocess.run(["umount", str(path)], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True,
                       timeout=CMD_TIMEOUT)


def tmpfs_resize(path, size):
    """Grows (or shrinks) the tmpfs at PATH to SIZE, e.g. "64m"."""
    r = subprocess.run(["mount", "-o", "remount,size=%s" % size, str(path)],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, "tmpfs remount: %s" % r.stderr


@contextlib.contextmanager
def node_on_tmpfs(cluster, name, size):
    """A node NAME of CLUSTER, not enrolled yet, whose STATE is a fresh
    tmpfs of SIZE (e.g. "8m") holding its key: the test enrolls it with
    pregen_key=False. Skips where a tmpfs cannot be mounted. On the way out
    the daemon goes first (then STATE can be unmounted), its log, which
    lives on the tmpfs, is checked for sanitizer output, and the tmpfs is
    unmounted; what went wrong fails the test."""
    node = Node(cluster.snoop, name, cluster.base, free_port())
    cluster.nodes[name] = node
    node.state.mkdir(mode=0o700)
    r = tmpfs_mount(node.state, size)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
    problems = []
    try:
        genkey(node.state / "node.key")
        yield node
    finally:
        problems = node.teardown()
        try:
            hits = sanitizer_hits(node.log.read_text(errors="replace"))
            if hits:
                problems.append("sanitizer output in %s:\n%s"
                                % (node.log, "\n".join(hits)))
        except OSError:
            pass
        tmpfs_umount(node.state)
    assert not problems, "\n".join(problems)


# --- certificates and refreshing clusters (revocation, renewal) ---------------

def cert_info(path):
    """(serial hex, notAfter text) of the PEM certificate at PATH."""
    r = openssl("x509", "-noout", "-serial", "-enddate", "-in", str(path))
    assert r.returncode == 0, r.stderr
    fields = dict(line.split("=", 1) for line in r.stdout.split("\n") if "=" in line)
    return fields["serial"].upper(), fields["notAfter"]


def build_refreshing(c, refresh, names=("alice", "bob", "carol")):
    """The CA and NAMES, every one mounted with --refresh REFRESH so that a
    change at the CA reaches all within a few seconds; they know each other.
    Open enrollment keeps the fixture independent of join tokens."""
    c.init_ca("ca", mount=False, extra=("--open-enrollment",))
    c.ca.mount("--refresh", str(refresh))
    for name in names:
        c.add_node(name, extra=("--refresh", str(refresh)))
    c.wait_all_know_all()


# --- peers that exist only on the wire ------------------------------------------

class WirePeer:
    """An enrolled node that exists only on the wire: snoopwire holds its
    TLS identity, so a test can speak any request as it, hostile or not."""

    def __init__(self, name, key, cert):
        self.name, self.key, self.cert = name, key, cert


def post_crt(addr, name, key, cert):
    """Hands NAME's certificate to the node at ADDR over TLS as NAME (so it
    knows NAME at once); the reply, or None if the node dropped it."""
    from cryptography.hazmat.primitives import serialization
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    req = snoopwire.build("post/crt", "", name, payload=pem, key=key)
    try:
        s = snoopwire.connect(addr, timeout=10, as_node=snoopwire.identity(name))
    except snoopwire.TLSRefused:
        return None
    with s:
        try:
            snoopwire.send_frame(s, req.body)
            return snoopwire.parse(snoopwire.recv_frame(s))
        except (snoopwire.Dropped, socket.timeout, OSError):
            return None


def wire_peer(cluster, name, known_by=(), address=None):
    """Enrolls NAME (at ADDRESS, by default a free port nobody serves) with
    CLUSTER's CA over the wire (a join token) and makes the nodes KNOWN_BY
    learn its certificate; returns a WirePeer."""
    key = snoopwire.new_key()
    res = snoopwire.enroll(cluster.ca.addr, name, key,
                           address or "127.0.0.1:%d" % free_port(),
                           token=cluster.token(name))
    assert res.ok, "enrolling %s: %r" % (name, res.reply)
    peer = WirePeer(name, key, res.cert)
    for node_name in known_by:
        node = cluster.nodes[node_name]
        post_crt(node.addr, name, key, res.cert)
        # post/crt makes it quick; the periodic refresh is the fallback.
        assert wait_until(lambda: name in node.cert_names(), 45, interval=0.5), (
            "%s never learnt about %s" % (node_name, name))
    return peer
