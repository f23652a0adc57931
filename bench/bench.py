#!/usr/bin/python3
"""snoopfs benchmark driver; started by bench/run (which installs, builds and
makes WORK). Usage: bench.py WORK. Everything it starts is recorded in
WORK/pids and WORK/mounts so bench/run can clean up even after a kill -9.

Environment: BENCH_RUNS (default 3), BENCH_QUICK=1 (256 MiB instead of 1 GiB,
1,000 enrollments instead of 10,000, no 4 GiB), BENCH_ONLY=bulk,small,...
(a subset of bulk,read,small,enroll,memory,fanout; read and memory ride on
bulk's transfers, so they need bulk), BENCH_BUILD (build directory whose
snoopfs is measured; default build).

Each measurement runs once uncounted (a warm-up: this VM touches memory it
handed back to the host slowly) and then BENCH_RUNS times; the table shows
medians of the counted runs. CPU figures come from /proc/PID/stat (daemons,
sshd, kernel threads) and wait4's rusage (cp, scp), sampled around each
transfer; docs/performance.md says what each counts and misses.
"""

import collections
import concurrent.futures as cf
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
import snoopwire as w  # noqa: E402

BIN = os.path.join(os.path.realpath(os.environ.get(
    "BENCH_BUILD", os.path.join(ROOT, "build"))), "snoopfs")
WORK = os.path.realpath(sys.argv[1])
RUNS = max(1, int(os.environ.get("BENCH_RUNS", "3")))
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ONLY = set(filter(None, os.environ.get(
    "BENCH_ONLY", "bulk,read,small,enroll,memory,fanout").split(",")))
MiB = 1 << 20
BULK = (256 if QUICK else 1024) * MiB
BIG4 = None if QUICK else 4096 * MiB
FAN = 100 * MiB
SMALL_N, SMALL_SIZE = 1000, 1024
ALONE_N = 50            # small files sent one at a time, nothing queued
POLL_NAP = 0.001        # s between two passes of the latency poller
ENROLL_N = 1000 if QUICK else 10000
ENROLL_C = 1000
KEY_POOL = 256
CIPHER = "aes128-gcm@openssh.com"
NCPU = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK")

mounts = []   # mount points, unmounted in reverse order
procs = []    # Popen objects we started (sshd, nullfs)
dpids = []    # daemon pids from STATE/snoopfs.pid


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def record(fname, line):
    with open(os.path.join(WORK, fname), "a") as f:
        f.write("%s\n" % line)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(pred, timeout, interval=0.005, what="condition"):
    end = time.monotonic() + timeout
    while True:
        if pred():
            return time.monotonic()
        if time.monotonic() > end:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(interval)


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(*cmd, **kw):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, **kw)
    return time.monotonic() - t0


def sha256sum(path):
    out = subprocess.run(["sha256sum", path], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[0]


def rand_file(path, size):
    # openssl rand is far faster than /dev/urandom for GiBs
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 256 * MiB)
            f.write(subprocess.run(["openssl", "rand", str(n)], check=True,
                                   capture_output=True).stdout)
            left -= n


# --- /proc ------------------------------------------------------------------

def reset_hwm(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM")


def proc_stat(pid):
    """/proc/PID/stat's fields after the command name: [0] is field 3
    (state), [1] ppid, [6] flags, [11] utime, [12] stime, [13] cutime,
    [14] cstime, [19] starttime."""
    with open("/proc/%s/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_s(pid):
    """utime+stime of PID, all its threads (live and ended), in seconds."""
    rest = proc_stat(pid)
    return (int(rest[11]) + int(rest[12])) / TICK


def reaped_cpu_s(pid):
    """cutime+cstime of PID: the CPU of the children it has reaped (and of
    theirs), in seconds."""
    rest = proc_stat(pid)
    return (int(rest[13]) + int(rest[14])) / TICK


def all_stats():
    """(pid, fields of proc_stat) of every process now."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                yield int(d), proc_stat(d)
            except (OSError, IndexError):  # gone meanwhile
                pass


PF_KTHREAD = 0x00200000  # include/linux/sched.h


def kthreads_cpu():
    """utime+stime (s) of every kernel thread now (PF_KTHREAD: kworkers,
    ksoftirqd, kswapd, ...), keyed by (pid, starttime) so a reused pid is
    a new thread."""
    return {(pid, rest[19]): (int(rest[11]) + int(rest[12])) / TICK
            for pid, rest in all_stats() if int(rest[6]) & PF_KTHREAD}


def kthreads_since(k0):
    """CPU seconds the kernel threads spent since K0 (kthreads_cpu()): a
    thread born since counts whole, one that ended since is lost."""
    return sum(v - k0.get(k, 0.0) for k, v in kthreads_cpu().items())


class CpuWindow:
    """CPU seconds over a window: each of PIDS (utime+stime, all threads)
    and all kernel threads (kthreads_cpu). Sample with stop()."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.k0 = kthreads_cpu()
        self.p0 = [cpu_s(p) for p in self.pids]

    def stop(self):
        """Sets .procs (seconds per pid, in order) and .kernel."""
        self.procs = [cpu_s(p) - c for p, c in zip(self.pids, self.p0)]
        self.kernel = kthreads_since(self.k0)
        return self


def timed_cpu(*cmd):
    """Runs CMD (check=True): (wall seconds, its CPU seconds: utime+stime
    of it and of the children it waited for, from wait4's rusage)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise subprocess.CalledProcessError(p.returncode, cmd)
    return dt, ru.ru_utime + ru.ru_stime


# --- snoopfs nodes ----------------------------------------------------------

class Node:
    def __init__(self, name, mnt, state):
        self.name, self.mnt, self.state = name, mnt, state
        pf = os.path.join(state, "snoopfs.pid")
        wait_until(lambda: os.path.exists(pf) and open(pf).read().strip(),
                   10, 0.02, pf)
        with open(os.path.join(state, "snoopfs.pid")) as f:
            self.pid = int(f.read().split()[0])

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)


def mount(name, state, extra=(), env=None):
    mnt = os.path.join(WORK, name)
    os.makedirs(mnt, exist_ok=True)
    run(BIN, "mount", mnt, "--state", state, *extra,
        stdout=subprocess.DEVNULL, env=env)
    mounts.append(mnt)
    record("mounts", mnt)
    n = Node(name, mnt, state)
    dpids.append(n.pid)
    record("pids", n.pid)
    return n


def unmount(node):
    subprocess.run(["fusermount3", "-u", "-z", node.mnt])
    if node.mnt in mounts:
        mounts.remove(node.mnt)
    try:
        wait_until(lambda: not os.path.exists("/proc/%d" % node.pid), 10,
                   0.05, "daemon exit")
    except TimeoutError:
        os.kill(node.pid, signal.SIGTERM)


def ca_init(name):
    port = free_port()
    state = os.path.join(WORK, name + ".state")
    # --open-enrollment: the enrollment benchmark sends 10,000 raw get/csr
    # requests and measures the CA's signing rate, which a token per
    # request would turn into a benchmark of `snoopfs token`; nodes pin
    # the CA by fingerprint. Tokens are tested in test_tokens.py.
    out = subprocess.run([BIN, "ca-init", state, "--name", name, "--listen",
                          "127.0.0.1:%d" % port, "--open-enrollment"],
                         check=True,
                         capture_output=True, text=True).stdout
    fp = re.search(r"sha256:[0-9a-fA-F:]+", out).group(0)
    return mount(name, state), "127.0.0.1:%d" % port, fp


def node(name, ca_addr, fp, extra=()):
    return mount(name, os.path.join(WORK, name + ".state"), (
        "--name", name, "--listen", "127.0.0.1:%d" % free_port(),
        "--ca", ca_addr, "--ca-fingerprint", fp) + tuple(extra))


# --- sshd -------------------------------------------------------------------

class Cost(collections.namedtuple("Cost", "dt client sshd kernel")):
    """What one scp took: wall seconds; CPU seconds of scp with its ssh
    (client), of the sshd processes that served it, and of the kernel
    threads over the same window."""

    @property
    def cpu(self):
        return self.client + self.sshd


class Ssh:
    def __init__(self):
        d = os.path.join(WORK, "ssh")
        os.makedirs(d, mode=0o700)
        self.hostkey = os.path.join(d, "host_ed25519")
        self.key = os.path.join(d, "client_ed25519")
        for k in (self.hostkey, self.key):
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k)
        shutil.copy(self.key + ".pub", os.path.join(d, "authorized_keys"))
        self.port = free_port()
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port, "ListenAddress 127.0.0.1",
                "HostKey " + self.hostkey,
                "AuthorizedKeysFile " + os.path.join(d, "authorized_keys"),
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                "UsePAM no", "StrictModes no",
                "PidFile " + os.path.join(d, "sshd.pid"),
                "Subsystem sftp internal-sftp", ""]))
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir
        p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg],
                             stderr=open(os.path.join(d, "sshd.log"), "w"))
        procs.append(p)
        record("pids", p.pid)
        self.pid = p.pid  # sshd -D: the listener, which reaps each session
        self.opts = ["-o", "StrictHostKeyChecking=no",
                     "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                     "-i", self.key]
        wait_until(lambda: subprocess.run(
            ["ssh", "-p", str(self.port)] + self.opts +
            ["root@127.0.0.1", "true"], capture_output=True).returncode == 0,
            20, 0.2, "sshd")

    def sessions(self):
        return {pid for pid, rest in all_stats() if int(rest[1]) == self.pid}

    def scp(self, src, dst, recursive=False):
        """scp SRC to DST here; a Cost. The sshd processes' CPU is the
        listener's cutime+cstime once it has reaped the session (each sshd
        process reaps its own children, so it all rolls up)."""
        before = self.sessions()
        k0, s0 = kthreads_cpu(), reaped_cpu_s(self.pid)
        dt, cpu = timed_cpu("scp", "-q", "-c", CIPHER, "-P", str(self.port),
                            *(["-r"] if recursive else []), *self.opts,
                            src, "root@127.0.0.1:" + dst)
        wait_until(lambda: self.sessions() <= before, 10, 0.005,
                   "sshd reaping the scp session")
        return Cost(dt, cpu, reaped_cpu_s(self.pid) - s0, kthreads_since(k0))

    def sshfs(self, remote, mnt):
        os.makedirs(mnt, exist_ok=True)
        run("sshfs", "root@127.0.0.1:" + remote, mnt, "-p", str(self.port),
            "-o", "IdentityFile=" + self.key, "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "Ciphers=" + CIPHER)
        mounts.append(mnt)
        record("mounts", mnt)


# --- measurements -----------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def rounds(R, what):
    """Yields (i, the dict to record into) for one uncounted warm-up (i 0,
    a scratch dict; its errors still count) and then the RUNS counted runs
    (i 1..RUNS, R itself). This VM touches memory it handed back to the
    host slowly, so the first run of each measurement is not timed."""
    for i in range(RUNS + 1):
        if i == 0:
            log("%s: warm-up run (not counted)" % what)
            W = collections.defaultdict(list)
            yield i, W
            R["errors"] += ["warm-up " + e for e in W["errors"]]
        else:
            log("%s run %d/%d" % (what, i, RUNS))
            yield i, R


def snoop_send(alice, bob, src, name, timeout):
    """cp SRC into alice's outbox/bob/NAME. Returns (seconds until bob's
    inbox has it, its path there, cp's CPU seconds, a stopped CpuWindow
    over alice's and bob's daemons and the kernel threads from before the
    cp until alice has the receipt)."""
    win = CpuWindow((alice.pid, bob.pid))
    t0 = time.monotonic()
    _, cp_cpu = timed_cpu("cp", src, alice.p("outbox", bob.name, name))
    dst = bob.p("inbox", alice.name, name)
    t1 = wait_until(lambda: os.path.exists(dst), timeout, 0.002, dst)
    out = alice.p("outbox", bob.name, name)
    wait_until(lambda: not os.path.exists(out), 120, 0.01, "receipt")
    return t1 - t0, dst, cp_cpu, win.stop()


def bench_bulk(Rall, alice, bob, ssh, null, streaming):
    """NULL: (mount point, pid) of the null FUSE file system, or None.
    STREAMING: a second (alice, bob) pair whose daemons run with
    --stream off (no streaming while writing: sent after the close),
    or None."""
    src = os.path.join(WORK, "data", "big")
    os.makedirs(os.path.dirname(src), exist_ok=True)
    log("making %d MiB random file" % (BULK // MiB))
    rand_file(src, BULK)
    want = sha256sum(src)
    scpdst = os.path.join(WORK, "scpdst")
    sshfsdst = os.path.join(WORK, "sshfsdst")
    os.makedirs(scpdst)
    os.makedirs(sshfsdst)
    sshfsmnt = os.path.join(WORK, "sshfsmnt")
    ssh.sshfs(sshfsdst, sshfsmnt)
    GB = BULK / 1e9
    for i, R in rounds(Rall, "bulk"):
        for n in (alice, bob):
            reset_hwm(n.pid)
        dt, dst, cp_cpu, win = snoop_send(alice, bob, src, "big", 600)
        R["bulk_snoop"].append(BULK / dt / 1e6)
        # CPU seconds per GB (10^9 bytes) of everything the transfer
        # keeps busy: both daemons, cp, and the kernel threads
        R["cpu_alice"].append(win.procs[0] / GB)
        R["cpu_bob"].append(win.procs[1] / GB)
        R["cpu_cp"].append(cp_cpu / GB)
        R["cpu_kernel"].append(win.kernel / GB)
        R["cpu_total"].append((sum(win.procs) + cp_cpu + win.kernel) / GB)
        R["rss_send_1"].append(hwm_mib(alice.pid))
        R["rss_recv_1"].append(hwm_mib(bob.pid))
        # read: the inbox file, the same plain file (page cache), null FUSE
        R["read_inbox"].append(BULK / timed("sh", "-c", 'cat "$0" >/dev/null',
                                            dst) / 1e6)
        R["read_plain"].append(BULK / timed("sh", "-c", 'cat "$0" >/dev/null',
                                            src) / 1e6)
        if null:
            nullmnt, nullpid = null
            R["read_null"].append(BULK / timed(
                "sh", "-c", 'cat "$0" >/dev/null',
                os.path.join(nullmnt, "big")) / 1e6)
            # The most any FUSE file system takes a cp at here: one that
            # keeps nothing (bench/nullfs.c's /sink), and the CPU time
            # that takes cp and the daemon.
            d0 = cpu_s(nullpid)
            t, c = timed_cpu("cp", src, os.path.join(nullmnt, "sink"))
            R["write_null"].append(BULK / t / 1e6)
            R["fuse_cpu_per_byte"].append((c + cpu_s(nullpid) - d0) / BULK)
        R["rss_recv_1"][-1] = max(R["rss_recv_1"][-1], hwm_mib(bob.pid))
        if sha256sum(dst) != want:
            R["errors"].append("bulk run %d: sha256 mismatch in inbox" % i)
        os.unlink(dst)
        if streaming:
            sa, sb = streaming
            dt, sdst, cp_cpu, win = snoop_send(sa, sb, src, "big", 600)
            R["bulk_nostream"].append(BULK / dt / 1e6)
            R["cpu_total_nostream"].append(
                (sum(win.procs) + cp_cpu + win.kernel) / GB)
            if sha256sum(sdst) != want:
                R["errors"].append("bulk run %d: sha256 mismatch in the "
                                   "non-streaming pair's inbox" % i)
            os.unlink(sdst)
        c = ssh.scp(src, scpdst + "/big")
        R["bulk_scp"].append(BULK / c.dt / 1e6)
        R["cpu_scp"].append(c.cpu / GB)
        R["cpu_scp_sshd"].append(c.sshd / GB)  # raw only: part of cpu_scp
        R["cpu_scp_kernel"].append(c.kernel / GB)
        R["cpu_scp_total"].append((c.cpu + c.kernel) / GB)
        R["cpu_ratio_scp"].append(R["cpu_total"][-1] / R["cpu_scp_total"][-1])
        if sha256sum(scpdst + "/big") != want:
            R["errors"].append("bulk run %d: scp sha256 mismatch" % i)
        os.unlink(scpdst + "/big")
        t = timed("cp", src, sshfsmnt + "/big")
        R["bulk_sshfs"].append(BULK / t / 1e6)
        if sha256sum(sshfsdst + "/big") != want:
            R["errors"].append("bulk run %d: sshfs sha256 mismatch" % i)
        os.unlink(sshfsdst + "/big")
        R["bulk_ratio_scp"].append(R["bulk_snoop"][-1] / R["bulk_scp"][-1])
        R["bulk_ratio_sshfs"].append(R["bulk_snoop"][-1] / R["bulk_sshfs"][-1])
        if streaming:
            R["bulk_ratio_nostream"].append(R["bulk_nostream"][-1] /
                                          R["bulk_scp"][-1])
        if null:
            floor = contract_cpu_per_byte(R["fuse_cpu_per_byte"][-1])
            R["cpu_floor"].append(floor * 1e9)
            R["bulk_ceiling"].append(NCPU / floor / 1e6)
    subprocess.run(["fusermount3", "-u", "-z", sshfsmnt])
    mounts.remove(sshfsmnt)
    os.unlink(src)
    if BIG4 and "memory" in ONLY:
        log("memory: 4 GiB transfer (one run)")
        rand_file(src, BIG4)
        for n in (alice, bob):
            reset_hwm(n.pid)
        R = Rall
        dt, dst, _, _ = snoop_send(alice, bob, src, "big4", 1800)
        R["bulk4_snoop"].append(BIG4 / dt / 1e6)
        R["rss_send_4"].append(hwm_mib(alice.pid))
        subprocess.run(["sh", "-c", 'cat "$0" >/dev/null', dst], check=True)
        R["rss_recv_4"].append(hwm_mib(bob.pid))
        os.unlink(dst)
        os.unlink(src)


def receipts_in(alice, d):
    """Waits until alice's outbox/bob/D holds nothing pending."""
    p = alice.p("outbox", "bob", d)
    wait_until(lambda: not os.path.isdir(p) or not os.listdir(p), 120, 0.05,
               "small receipts")


def log_size(node):
    try:
        return os.path.getsize(os.path.join(node.state, "snoopfs.log"))
    except FileNotFoundError:
        return 0


def batches_since(node, offset):
    """(batches, files in them) NODE logged as received since byte OFFSET
    of its log: the receiver's "received a batch of N file(s)" lines."""
    with open(os.path.join(node.state, "snoopfs.log"), "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    sizes = [int(n) for n in re.findall(r"received a batch of (\d+) file", text)]
    return len(sizes), sum(sizes)


def bench_small(Rall, alice, bob, ssh):
    # One core's RSA-2048 private operations per second, for the floors:
    # each batch costs two (the sender's signature and the receiver's
    # signed receipt; the receiver derives the batch key from a peer key
    # it unwrapped once, post/batch/peerkey), and a lone file, which goes
    # as a batch of one once the peer took a batch, waits for one (the
    # signature: the file is in the inbox before the receipt is signed).
    rsa1 = openssl_signs() / NCPU
    tree = os.path.join(WORK, "data", "small")
    os.makedirs(tree)
    names = ["f%04d" % i for i in range(SMALL_N)]
    for n in names:
        with open(os.path.join(tree, n), "wb") as f:
            f.write(os.urandom(SMALL_SIZE))
    scpdst = os.path.join(WORK, "scpdst")
    os.makedirs(scpdst, exist_ok=True)
    for i, R in rounds(Rall, "small files"):
        # files per second: one cp -r, until all are in bob's inbox
        d = "tree%d" % i
        inb = bob.p("inbox", "alice", d)

        def count():
            try:
                return len(os.listdir(inb))
            except FileNotFoundError:
                return 0
        logged = log_size(bob)
        win = CpuWindow((alice.pid, bob.pid))
        t0 = time.monotonic()
        _, cp_cpu = timed_cpu("cp", "-r", tree, alice.p("outbox", "bob", d))
        t1 = wait_until(lambda: count() >= SMALL_N, 300, 0.005, "small files")
        R["small_snoop_fps"].append(SMALL_N / (t1 - t0))
        # CPU ms per file: the daemons' until every receipt is in (not
        # timed: the clock stopped at the last arrival)
        receipts_in(alice, d)
        win.stop()
        R["small_cpu_alice"].append(win.procs[0] * 1000 / SMALL_N)
        R["small_cpu_bob"].append(win.procs[1] * 1000 / SMALL_N)
        R["small_cpu"].append(sum(win.procs) * 1000 / SMALL_N)
        R["small_cpu_cp"].append(cp_cpu * 1000 / SMALL_N)
        R["small_cpu_kernel"].append(win.kernel * 1000 / SMALL_N)
        nb, nf = batches_since(bob, logged)
        if nb:
            R["small_per_batch"].append(nf / nb)
            R["small_rsa_floor"].append(2 * 1000 / rsa1 / (nf / nb))
        R["alone_rsa_floor"].append(1000 / rsa1)
        # latency: write the same files from here, close -> appearance
        d = "lat%d" % i
        os.mkdir(alice.p("outbox", "bob", d))
        inb = bob.p("inbox", "alice", d)
        closed = [None] * SMALL_N
        seen = [None] * SMALL_N
        done = threading.Event()

        # The poller naps POLL_NAP between passes: spinning, it took one of
        # the two CPUs from the daemons it was timing. The nap bounds the
        # error it adds to each latency.
        def poll():
            low = 0
            while low < SMALL_N and not done.is_set():
                hi = min(SMALL_N, low + 16)
                for k in range(low, hi):
                    if seen[k] is None and os.path.exists(
                            os.path.join(inb, names[k])):
                        seen[k] = time.monotonic()
                while low < SMALL_N and seen[low] is not None:
                    low += 1
                time.sleep(POLL_NAP)
        th = threading.Thread(target=poll)
        th.start()
        try:
            for k, n in enumerate(names):
                with open(os.path.join(tree, n), "rb") as f:
                    data = f.read()
                with open(alice.p("outbox", "bob", d, n), "wb") as f:
                    f.write(data)
                closed[k] = time.monotonic()
            th.join(300)
        finally:
            done.set()
            th.join()
        lat = [(s - c) * 1000 for s, c in zip(seen, closed) if s is not None]
        if len(lat) < SMALL_N:
            R["errors"].append("small run %d: %d of %d files did not arrive"
                               % (i, SMALL_N - len(lat), SMALL_N))
        R["small_p50"].append(pct(lat, 0.50) if lat else None)
        R["small_p99"].append(pct(lat, 0.99) if lat else None)
        # The same without a queue: each file is written once the one
        # before is in the inbox, against scp of one file (which connects
        # each time, as a script that copies files one by one would).
        d = "one%d" % i
        os.mkdir(alice.p("outbox", "bob", d))
        alone, scp_one = [], []
        for k in range(ALONE_N):
            with open(os.path.join(tree, names[k]), "rb") as f:
                data = f.read()
            q = bob.p("inbox", "alice", d, names[k])
            with open(alice.p("outbox", "bob", d, names[k]), "wb") as f:
                f.write(data)
            c = time.monotonic()
            s = wait_until(lambda: os.path.exists(q), 30, 0.0005,
                           "a lone small file")
            alone.append((s - c) * 1000)
            time.sleep(0.02)
        for k in range(min(ALONE_N, 10)):
            scp_one.append(1000 * ssh.scp(os.path.join(tree, names[k]),
                                          "%s/one-%d" % (scpdst, k)).dt)
        R["alone_p50"].append(pct(alone, 0.50))
        R["alone_max"].append(max(alone))
        R["alone_scp"].append(med(scp_one))
        for d in ("lat%d" % i, "one%d" % i):
            receipts_in(alice, d)
        c = ssh.scp(tree, "%s/small%d" % (scpdst, i), recursive=True)
        R["small_scp_fps"].append(SMALL_N / c.dt)
        R["small_cpu_scp"].append(c.cpu * 1000 / SMALL_N)
        R["small_cpu_scp_kernel"].append(c.kernel * 1000 / SMALL_N)
        R["small_ratio"].append(R["small_snoop_fps"][-1] / R["small_scp_fps"][-1])
        for d in ("tree%d" % i, "lat%d" % i, "one%d" % i):
            shutil.rmtree(bob.p("inbox", "alice", d), ignore_errors=True)
        shutil.rmtree("%s/small%d" % (scpdst, i))


def openssl_signs():
    out = subprocess.run(["openssl", "speed", "-seconds", "3", "-multi",
                          str(NCPU), "rsa2048"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        m = re.match(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", line)
        if m:
            return float(m.group(1))
    raise RuntimeError("cannot parse openssl speed:\n" + out)


def openssl_bytes_per_s(alg):
    """One core's rate for ALG (an EVP cipher or digest) on 16 KiB blocks,
    the size of a TLS record, from openssl speed; bytes per second."""
    out = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes",
                          "16384", "-evp", alg], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        m = re.match(r"^%s\s+([\d.]+)k\s*$" % re.escape(alg), line, re.I)
        if m:
            return float(m.group(1)) * 1000
    raise RuntimeError("cannot parse openssl speed:\n" + out)


def contract_cpu_per_byte(fuse_cpu_per_byte):
    """CPU seconds per byte that no design of the contract can go under:
    every byte needs four AES-256-GCM passes (the seal, TLS out, TLS in,
    the receiver's check of each chunk) and two SHA-256 passes (the signed
    hash, at both ends), plus what taking it through FUSE costs. NCPU over
    it is the bulk rate no design can pass."""
    return (4 / openssl_bytes_per_s("aes-256-gcm")
            + 2 / openssl_bytes_per_s("sha256") + fuse_cpu_per_byte)


def bench_enroll(Rall):
    log("enrollment: %d keys for the load generator" % KEY_POOL)
    with cf.ThreadPoolExecutor(NCPU) as ex:
        keys = list(ex.map(lambda _: w.new_key(), range(KEY_POOL)))
    for i, R in rounds(Rall, "enrollment"):
        R["openssl_signs"].append(openssl_signs())
        log("enrollment: %d requests" % ENROLL_N)
        ca, ca_addr, _ = ca_init("eca%d" % i)
        with cf.ThreadPoolExecutor(NCPU) as ex:
            reqs = list(ex.map(lambda j: w.csr_request(
                "load-%05d" % j, keys[j % KEY_POOL],
                "127.0.0.1:%d" % (20000 + j % 40000)), range(ENROLL_N)))
        fails = []

        def one(j):
            try:
                rep = w.exchange(ca_addr, reqs[j], timeout=120)
                if rep is None:
                    return "dropped"
                if rep.status != "ok":
                    return "error: %s" % rep.extra.get("error")
                return None
            except Exception as e:  # noqa: BLE001 - every failure counts
                return "%s: %s" % (type(e).__name__, e)
        log("enrollment: %d concurrent" % ENROLL_C)
        t0, c0, g0 = time.monotonic(), cpu_s(ca.pid), os.times()
        with cf.ThreadPoolExecutor(ENROLL_C) as ex:
            res = list(ex.map(one, range(ENROLL_N)))
        dt, g1 = time.monotonic() - t0, os.times()
        R["enroll_ca_ms"].append((cpu_s(ca.pid) - c0) * 1000 / ENROLL_N)
        R["enroll_gen_cpu"].append((g1.user + g1.system - g0.user - g0.system)
                                   / dt)
        fails = [r for r in res if r is not None]
        R["enroll_fail"].append(len(fails))
        Rall["enroll_fail_any"].append(len(fails))  # the warm-up's too
        R["enroll_cps"].append((ENROLL_N - len(fails)) / dt)
        R["enroll_ratio"].append(R["enroll_cps"][-1] / R["openssl_signs"][-1])
        if fails:
            kinds = {}
            for f in fails:
                kinds[f[:60]] = kinds.get(f[:60], 0) + 1
            R["errors"].append("enroll run %d: failures %s" % (i, kinds))
        unmount(ca)


def bench_fanout(Rall, alice, receivers, daemons):
    """100 MiB from ALICE to RECEIVERS[0] alone and to all RECEIVERS at
    once: the CPU of alice's daemon, and of all DAEMONS (every snoopfs
    daemon of the run: sender, recipients, CA, and a relay if one serves
    them), from before the cp until alice has every receipt."""
    src = os.path.join(WORK, "data", "fan")
    os.makedirs(os.path.dirname(src), exist_ok=True)
    rand_file(src, FAN)
    folder = ",".join(r.name for r in receivers)
    os.mkdir(alice.p("outbox", folder))
    pids = [alice.pid] + [d.pid for d in daemons if d is not alice]
    for i, R in rounds(Rall, "fan-out"):
        for dest, rs in (("bob", receivers[:1]), (folder, receivers)):
            name = "fan%d" % i
            win = CpuWindow(pids)
            run("cp", src, alice.p("outbox", dest, name))
            out = alice.p("outbox", dest, name)
            wait_until(lambda: not os.path.exists(out), 600, 0.01, "fan-out")
            win.stop()
            for r in rs:
                p = r.p("inbox", "alice", name)
                if not os.path.exists(p):
                    R["errors"].append("fan-out: %s missing %s" % (r.name, name))
                else:
                    os.unlink(p)
            k = "1" if len(rs) == 1 else "8"
            R["fan" + k].append(win.procs[0])
            R["fan_all" + k].append(sum(win.procs))
        R["fan_ratio"].append(R["fan8"][-1] / R["fan1"][-1])
        R["fan_all_ratio"].append(R["fan_all8"][-1] / R["fan_all1"][-1])
        # Each more recipient has its own TLS stream, so the sender
        # encrypts the file once more for it (AES-256-GCM, the suite both
        # ends pick): the least that 7 more recipients can cost.
        tls = 7 * FAN / openssl_bytes_per_s("aes-256-gcm")
        R["fan_floor"].append((R["fan1"][-1] + tls) / R["fan1"][-1])
    os.unlink(src)


# --- report -----------------------------------------------------------------

def f(x, fmt="%.0f"):
    return "n/a" if x is None else fmt % x


def pf(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def table(R):
    """The markdown table: medians of the counted runs, PASS/FAIL against
    issue 21's targets. A row with an empty measurement column belongs to
    the row above it: a peer or a ceiling measured in the same run."""
    m = {k: med(v) for k, v in R.items() if k != "errors"}
    g = m.get
    rows = []
    size = "%d MiB" % (BULK // MiB)
    if g("bulk_snoop"):
        rows.append(("bulk %s, cp -> verified in bob's inbox" % size,
                     f(g("bulk_snoop")) + " MB/s",
                     "scp -c %s %s MB/s" % (CIPHER, f(g("bulk_scp"))),
                     f(g("bulk_ratio_scp"), "%.2fx"),
                     ">= 1.0x scp (stretch 1.3x)",
                     pf(g("bulk_ratio_scp") >= 1.0)))
        rows.append(("", "", "sshfs cp %s MB/s" % f(g("bulk_sshfs")),
                     f(g("bulk_ratio_sshfs"), "%.2fx"), "", ""))
        if g("write_null"):
            rows.append(("", "", "cp into null FUSE (write ceiling) %s MB/s"
                         % f(g("write_null")),
                         f(g("bulk_snoop") / g("write_null"), "%.2fx"), "",
                         ""))
        if g("bulk_nostream"):
            rows.append(("bulk %s, the same without streaming while "
                         "writing (--stream off: sent after the close)"
                         % size, f(g("bulk_nostream")) + " MB/s",
                         "scp (above); all processes' CPU %s s per GB"
                         % f(g("cpu_total_nostream"), "%.2f"),
                         f(g("bulk_ratio_nostream"), "%.2fx"), "", ""))
        if g("bulk_ceiling"):
            rows.append(("", "", "ceiling on %d CPUs: 4 AES-256-GCM + 2 "
                         "SHA-256 passes (openssl speed) + FUSE's own CPU "
                         "(null cp) per byte: %s MB/s (ratio: to scp)"
                         % (NCPU, f(g("bulk_ceiling"))),
                         f(g("bulk_ceiling") / g("bulk_scp"), "%.2fx"), "",
                         ""))
    if g("cpu_total"):
        s2 = "%.2f"
        rows.append(("bulk CPU s per GB, all processes: alice's + bob's "
                     "daemons + cp + kernel threads",
                     "%s s (%s + %s + %s + %s)" % (
                         f(g("cpu_total"), s2), f(g("cpu_alice"), s2),
                         f(g("cpu_bob"), s2), f(g("cpu_cp"), s2),
                         f(g("cpu_kernel"), s2)),
                     "scp: scp + ssh + sshd %s + kernel threads %s = %s s"
                     % (f(g("cpu_scp"), s2), f(g("cpu_scp_kernel"), s2),
                        f(g("cpu_scp_total"), s2)),
                     f(g("cpu_ratio_scp"), "%.2fx"), "<= 4.0 s",
                     pf(g("cpu_total") <= 4.0)))
        if g("cpu_floor"):
            rows.append(("", "", "floor: 4 AES-256-GCM + 2 SHA-256 passes "
                         "(openssl speed) + FUSE's own CPU (null cp): %s s"
                         % f(g("cpu_floor"), s2), "", "", ""))
    if g("read_inbox"):
        rows.append(("read %s, cat inbox/alice/big" % size,
                     f(g("read_inbox")) + " MB/s",
                     "cat plain file (page cache) %s MB/s" % f(g("read_plain")),
                     f(g("read_inbox") / g("read_plain"), "%.2fx"),
                     ">= 1 GB/s", pf(g("read_inbox") >= 1000)))
        if g("read_null"):
            rows.append(("", "", "null-FUSE ceiling %s MB/s" % f(g("read_null")),
                         f(g("read_inbox") / g("read_null"), "%.2fx"), "", ""))
    if g("small_snoop_fps"):
        s2 = "%.2f"
        rows.append(("small: 1,000 x 1 KiB, one cp -r",
                     f(g("small_snoop_fps")) + " files/s",
                     "scp -r %s files/s" % f(g("small_scp_fps")),
                     f(g("small_ratio"), "%.2fx"), ">= 1.5x scp -r",
                     pf(g("small_ratio") >= 1.5)))
        rows.append(("small: CPU per file in that cp -r, both daemons "
                     "(alice + bob)",
                     "%s ms (%s + %s)" % (f(g("small_cpu"), s2),
                                          f(g("small_cpu_alice"), s2),
                                          f(g("small_cpu_bob"), s2)),
                     "besides: cp -r %s ms, kernel threads %s ms; scp -r: "
                     "scp + ssh + sshd %s ms, kernel threads %s ms"
                     % (f(g("small_cpu_cp"), s2), f(g("small_cpu_kernel"), s2),
                        f(g("small_cpu_scp"), s2),
                        f(g("small_cpu_scp_kernel"), s2)),
                     "", "<= 1.2 ms", pf(g("small_cpu") <= 1.2)))
        if g("small_per_batch"):
            rows.append(("", "", "floor: RSA-2048 private operations alone "
                         "(2 per batch, %s files per batch in this cp -r, "
                         "openssl speed on one core): %s ms"
                         % (f(g("small_per_batch"), "%.1f"),
                            f(g("small_rsa_floor"), s2)), "", "", ""))
        rows.append(("small: burst, close -> in inbox, p50 / p99",
                     "%s / %s ms" % (f(g("small_p50"), "%.1f"),
                                     f(g("small_p99"), "%.1f")),
                     "", "", "p50 <= 50 ms", pf(g("small_p50") is not None
                                                and g("small_p50") <= 50)))
        rows.append(("small: %d files alone, close -> in inbox, p50 / max"
                     % ALONE_N,
                     "%s / %s ms" % (f(g("alone_p50"), "%.1f"),
                                     f(g("alone_max"), "%.1f")),
                     "scp of one file (a new connection each) %s ms"
                     % f(g("alone_scp"), "%.1f"),
                     "", "p50 <= 5 ms", pf(g("alone_p50") <= 5)))
        rows.append(("", "", "floor: the RSA-2048 private operation a lone "
                     "file waits for (the sender's signature; openssl speed "
                     "on one core): %s ms"
                     % f(g("alone_rsa_floor"), "%.1f"), "", "", ""))
    if g("enroll_cps") is not None:
        full = ENROLL_N >= 10000 and ENROLL_C >= 1000
        maxf = max(R["enroll_fail_any"])
        rows.append(("enroll %d, %d concurrent: certs/s (failures, worst run "
                     "incl. warm-up)" % (ENROLL_N, ENROLL_C),
                     "%s (%d failed)" % (f(g("enroll_cps")), maxf),
                     "openssl speed rsa2048, %d procs: %s signs/s"
                     % (NCPU, f(g("openssl_signs"))),
                     f(g("enroll_ratio"), "%.2fx"),
                     "0 failures (rate: no target)" + (
                         "" if full else " (spec: 10,000; quick run)"),
                     pf(maxf == 0)))
        # The CA signs three times per certificate with RSA-2048: the TLS
        # handshake, the certificate and the signed reply, so it cannot
        # issue more than a third of the sign rate even with no other work.
        rows.append(("", "", "ceiling at 3 signatures per certificate: "
                     "%s certs/s" % f(g("openssl_signs") / 3),
                     "0.33x", "", ""))
    if g("rss_send_1"):
        mx = max(v for k, v in m.items() if k.startswith("rss_") and v)
        flat = None
        if g("rss_send_4"):
            flat = all(g("rss_%s_4" % s) <= g("rss_%s_1" % s) * 1.1 + 4
                       for s in ("send", "recv"))
        desc = "%s: %s / %s MiB" % (size, f(g("rss_send_1"), "%.1f"),
                                   f(g("rss_recv_1"), "%.1f"))
        if g("rss_send_4"):
            desc += "; 4096 MiB: %s / %s MiB" % (f(g("rss_send_4"), "%.1f"),
                                                f(g("rss_recv_4"), "%.1f"))
        else:
            desc += "; 4 GiB skipped"
        ok = mx <= 64 and (flat is not False)
        rows.append(("memory: daemon peak RSS, sender / receiver", desc, "",
                     "", "<= 64 MiB, flat" + ("" if flat is not None else
                                              " (flatness not measured)"),
                     pf(ok)))
    if g("fan1"):
        rows.append(("fan-out 100 MiB: the sender's daemon CPU, 1 / 8 "
                     "recipients",
                     "%s / %s s" % (f(g("fan1"), "%.2f"), f(g("fan8"), "%.2f")),
                     "", f(g("fan_ratio"), "%.2fx"), "8 <= 1.5x 1",
                     pf(g("fan_ratio") <= 1.5)))
        rows.append(("", "", "floor if 7 more recipients cost only their "
                     "TLS AES-256-GCM pass (openssl speed)",
                     f(g("fan_floor"), "%.2fx"), "", ""))
        rows.append(("fan-out 100 MiB: all daemons' CPU (sender, recipients, "
                     "CA, any relay), 1 / 8 recipients",
                     "%s / %s s" % (f(g("fan_all1"), "%.2f"),
                                    f(g("fan_all8"), "%.2f")),
                     "", f(g("fan_all_ratio"), "%.2fx"), "(no target)", ""))
    out = ["| measurement | snoopfs | peer (same run) | ratio | target | |",
           "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    if soft < want:  # 1,000 client sockets, and the daemons inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    R = collections.defaultdict(list)  # measurement -> one value per run
    t_start = time.monotonic()
    log("runs=%d quick=%s bulk=%d MiB enroll=%d/%d cpus=%d" % (
        RUNS, QUICK, BULK // MiB, ENROLL_N, ENROLL_C, NCPU))
    ssh = Ssh() if ONLY & {"bulk", "small"} else None
    null = None
    nullbin = os.path.join(WORK, "nullfs")
    if os.path.exists(nullbin) and "bulk" in ONLY:
        nullmnt = os.path.join(WORK, "nullmnt")
        os.makedirs(nullmnt)
        p = subprocess.Popen([nullbin, nullmnt, str(BULK), "-f"],
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        record("pids", p.pid)
        mounts.append(nullmnt)
        record("mounts", nullmnt)
        wait_until(lambda: os.path.exists(nullmnt + "/big"), 10, 0.05, "nullfs")
        null = (nullmnt, p.pid)
    if ONLY & {"bulk", "small", "fanout", "memory", "read"}:
        ca, ca_addr, fp = ca_init("ca")
        alice = node("alice", ca_addr, fp)
        receivers = [node("bob", ca_addr, fp)]
        if "fanout" in ONLY:
            receivers += [node("n%d" % k, ca_addr, fp) for k in range(2, 9)]
        bob = receivers[0]
        streaming = None
        if "bulk" in ONLY:
            off = ("--stream", "off")
            streaming = (node("salice", ca_addr, fp, off),
                         node("sbob", ca_addr, fp, off))
        wait_until(lambda: all(os.path.isdir(alice.p("outbox", r.name))
                               for r in receivers), 90, 0.2, "certificates")
        if streaming:
            wait_until(lambda: os.path.isdir(streaming[0].p("outbox", "sbob")),
                       90, 0.2, "certificates")
        if "bulk" in ONLY:
            bench_bulk(R, alice, bob, ssh, null, streaming)
        if "small" in ONLY:
            bench_small(R, alice, bob, ssh)
        if "fanout" in ONLY:
            # a relay, when there is one, joins this list
            bench_fanout(R, alice, receivers, [alice, ca] + receivers)
    if "enroll" in ONLY:
        bench_enroll(R)
    print("\nsnoopfs bench: medians of %d run(s)%s, %d CPUs, %s; took %.0f s\n" % (
        RUNS, ", BENCH_QUICK" if QUICK else "", NCPU,
        os.uname().release, time.monotonic() - t_start))
    sys.stdout.flush()
    print(table(R))
    if R["errors"]:
        print("\nerrors:")
        for e in R["errors"]:
            print("- " + e)
    print("\nraw: " + " ".join("%s=%s" % (k, ",".join(
        "%.4g" % x for x in v)) for k, v in R.items() if v and k != "errors"))
    return 1 if R["errors"] else 0


def cleanup():
    for m in reversed(mounts):
        subprocess.run(["fusermount3", "-u", "-z", m], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    for pid in dpids:  # only if it is still our snoopfs daemon
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                if b"snoopfs" in fh.read():
                    os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ProcessLookupError):
            pass
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    rc = 1
    try:
        rc = main()
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        cleanup()
    sys.exit(rc)
