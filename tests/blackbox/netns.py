"""netns: separate hosts for the black-box tests, made of network namespaces.

A Lan is a bridge in the root namespace (no address, so nothing of the
root namespace is routed through it) and, per Host, a network namespace
joined to the bridge by a veth pair: the end inside is called eth0 and has
the host's 10.x/24 address, the end outside is a port of the bridge. A host
reaches the other hosts of its Lan and nothing else (it has no default
route). A node is placed on a host by starting its daemon under
`nsenter --net=/run/netns/NS`, which changes only the network namespace, so
its FUSE mount stays visible to the tests (`ip netns exec` would also make
a new mount namespace and hide it); Host.node_kw() gives Cluster.init_ca
and Cluster.add_node what they need for that.

The outside end of a host's veth is its link: Host.link_down()/link_up()
pull and put back its cable, Host.shape() puts a tbf on both ends (both
directions), and Host.counters() reads the outside end's byte counters,
which count what actually crossed the link (a packet dropped on a link
that is down is not counted; a TCP segment that the veth carries as one
large GSO packet counts its headers once, so headers are undercounted by
a few percent, payload never). Host.readdress() gives a host another
address in its Lan's subnet and takes the old one away, as a new DHCP
lease would.

Names instead of addresses: use_hosts_file() makes the snoopfs processes
of one Snoop resolve names through a hosts file of the test's own, with
nss_wrapper (LD_PRELOAD). /etc/hosts stays untouched, and
/etc/netns/NS/hosts would not do: only `ip netns exec` reads it, by
bind-mounting it in a new mount namespace.

Names: the name of every object of a run starts with the run's id, "snpn"
and 6 random hex digits (namespace snpn3fa2c1-alice, bridge snpn3fa2c1br,
veth snpn3fa2c1v1), and the run holds a flock on
/run/snoopfs-netns/ID.lock while it lives. sweep() removes only the
objects of runs whose lock is free (their process is gone: a kill -9, a
second Ctrl-C during teardown), never those of a run still going, nor
anything without our lock file.
"""

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import snoopnodes

RUN_DIR = Path("/run/snoopfs-netns")
NAME_PREFIX = "snpn"
SUBNET = os.environ.get("SNOOPFS_NETNS_SUBNET", "10.77.0")   # the first three octets
PORT = 7000              # every host has its own address, so one port will do
CMD_TIMEOUT = 30
INNER_DEV = "eth0"       # the host's end of its link, inside its namespace

# tbf: the bucket holds 10 ms at the rate (at least 32 KiB: a few full
# frames), and up to 50 ms of packets wait in the queue before tbf drops.
TBF_BURST_MS = 10
TBF_MIN_BURST = 32 << 10
TBF_LATENCY = "50ms"


NSS_WRAPPER_GLOBS = ("/usr/lib/*/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so",
                     "/usr/lib64/libnss_wrapper.so")


class Unavailable(Exception):
    """Network namespaces cannot be made here."""


def _run(argv, check=True, timeout=CMD_TIMEOUT):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(str(a) for a in argv),
                                                r.returncode, r.stderr.strip()))
    return r


def ip(*args, check=True):
    return _run(["ip", *args], check=check)


def unavailable_reason():
    """Why namespaces cannot be made here, or None if they can be tried."""
    if os.geteuid() != 0:
        return "not root (network namespaces, veth pairs and bridges need root)"
    for tool in ("ip", "tc", "nsenter"):
        if shutil.which(tool) is None:
            return "%s is missing (apt-get install iproute2 util-linux)" % tool
    return None


def _netns_names():
    r = ip("netns", "list", check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _link_names():
    r = ip("-o", "link", "show", check=False)
    names = []
    for line in r.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _netns_pids(ns):
    r = ip("netns", "pids", ns, check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _mount_arg(pid):
    """MNT of a `snoopfs mount MNT ...` command line, else None."""
    argv = snoopnodes.pid_cmdline(pid)
    if "mount" in argv:
        i = argv.index("mount")
        if i + 1 < len(argv):
            return argv[i + 1]
    return None


def _stop_processes(ns):
    """Ends what still runs in namespace NS, which only our run made: a
    snoopfs daemon is unmounted first (so its mount does not stay behind,
    dead), then every process gets SIGTERM and, if it lingers, SIGKILL.
    Returns the PIDs it found."""
    pids = _netns_pids(ns)
    for pid in pids:
        mnt = _mount_arg(pid) if snoopnodes.is_our_daemon(pid) else None
        if mnt and snoopnodes.is_mounted(mnt):
            snoopnodes.fusermount_u(mnt, lazy=True)
    alive = lambda: [p for p in pids if snoopnodes.pid_alive(p)]
    snoopnodes.wait_until(lambda: not alive(), 5)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if snoopnodes.wait_until(lambda: not alive(), 5):
            break
    return pids


def remove_run(run):
    """Removes every namespace and link whose name starts with RUN.
    Returns what it could not remove."""
    left = []
    for ns in _netns_names():
        if ns.startswith(run + "-"):
            _stop_processes(ns)
            r = ip("netns", "del", ns, check=False)
            if r.returncode != 0:
                left.append("netns %s: %s" % (ns, r.stderr.strip()))
    # Deleting a namespace deletes its end of each veth and so the other
    # end; the bridge and any veth left over go here.
    for link in _link_names():
        if link.startswith(run):
            r = ip("link", "del", link, check=False)
            if r.returncode != 0 and link in _link_names():
                left.append("link %s: %s" % (link, r.stderr.strip()))
    return left


def leftovers(run):
    """Names of namespaces and links of RUN that still exist."""
    return ([ns for ns in _netns_names() if ns.startswith(run + "-")]
            + [ln for ln in _link_names() if ln.startswith(run)])


def sweep():
    """Removes what earlier runs left behind: only runs whose lock file
    nobody holds any more. Returns the run ids it swept."""
    swept = []
    if not RUN_DIR.is_dir():
        return swept
    for lock in sorted(RUN_DIR.glob(NAME_PREFIX + "*.lock")):
        try:
            fd = os.open(str(lock), os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue        # that run is still going
            remove_run(lock.stem)
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            swept.append(lock.stem)
        finally:
            os.close(fd)
    return swept


class Host:
    """One host: a network namespace with one link to its Lan's bridge."""

    def __init__(self, lan, name, index):
        self.lan = lan
        self.name = name
        self.ns = "%s-%s" % (lan.run, name)
        self.veth = "%sv%d" % (lan.run, index)     # the link's outside end
        self.ip = "%s.%d" % (lan.subnet, index)
        self.netns_path = "/run/netns/%s" % self.ns

    def __repr__(self):
        return "<Host %s %s>" % (self.name, self.ip)

    @property
    def prefix(self):
        """The command prefix that runs a program on this host."""
        return ["nsenter", "--net=%s" % self.netns_path]

    def node_kw(self, port=PORT, bind_all=False):
        """Keyword arguments for Cluster.init_ca/add_node: a node of this
        host, listening on its address, or with BIND_ALL on 0.0.0.0 and
        advertising its address."""
        kw = {"host": self.ip, "port": port, "prefix": self.prefix}
        if bind_all:
            kw["listen_host"] = "0.0.0.0"
        return kw

    def run(self, *argv, check=False, timeout=CMD_TIMEOUT):
        """Runs ARGV on this host (its network namespace only)."""
        return _run(self.prefix + [str(a) for a in argv], check=check,
                    timeout=timeout)

    def _make(self):
        ip("netns", "add", self.ns)
        ip("link", "add", self.veth, "type", "veth", "peer", "name", INNER_DEV,
           "netns", self.ns)
        # No IPv6: its router solicitations and DAD would add traffic of
        # their own to the byte counters.
        _no_ipv6(self.veth)
        ip("link", "set", self.veth, "master", self.lan.bridge, "up")
        self.run("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                 check=True)
        ip("-n", self.ns, "addr", "add", "%s/24" % self.ip, "dev", INNER_DEV)
        ip("-n", self.ns, "link", "set", INNER_DEV, "up")
        ip("-n", self.ns, "link", "set", "lo", "up")

    def readdress(self, index):
        """The host moves: its address becomes SUBNET.INDEX, the old one
        goes (as after a new DHCP lease). Returns the new address."""
        new = "%s.%d" % (self.lan.subnet, index)
        assert new not in [h.ip for h in self.lan.hosts.values()], new
        # The old one goes first: in the same subnet the new one would be
        # its secondary, and go with it.
        ip("-n", self.ns, "addr", "del", "%s/24" % self.ip, "dev", INNER_DEV)
        ip("-n", self.ns, "addr", "add", "%s/24" % new, "dev", INNER_DEV)
        self.ip = new
        return new

    # The link.

    def link_down(self):
        """Pulls the cable: nothing crosses until link_up()."""
        ip("link", "set", self.veth, "down")

    def link_up(self):
        ip("link", "set", self.veth, "up")

    def link_is_up(self):
        out = ip("-o", "link", "show", self.veth).stdout
        return "UP" in out.partition("<")[2].partition(">")[0].split(",")

    def shape(self, rate_bit):
        """Limits the link to RATE_BIT bits/s both ways (tbf at both ends)."""
        burst = max(rate_bit // 8 * TBF_BURST_MS // 1000, TBF_MIN_BURST)
        spec = ["root", "tbf", "rate", "%dbit" % rate_bit, "burst", str(burst),
                "latency", TBF_LATENCY]
        _run(["tc", "qdisc", "replace", "dev", self.veth] + spec)
        _run(["tc", "-n", self.ns, "qdisc", "replace", "dev", INNER_DEV] + spec)

    def unshape(self):
        for argv in (["tc", "qdisc", "del", "dev", self.veth, "root"],
                     ["tc", "-n", self.ns, "qdisc", "del", "dev", INNER_DEV,
                      "root"]):
            _run(argv, check=False)

    def qdiscs(self):
        """The qdiscs at both ends of the link, as tc shows them."""
        return (_run(["tc", "qdisc", "show", "dev", self.veth]).stdout
                + _run(["tc", "-n", self.ns, "qdisc", "show", "dev",
                        INNER_DEV]).stdout)

    def counters(self):
        """Bytes that crossed the link so far, from the host's side:
        {"sent": ..., "received": ...}: Ethernet frames with their headers
        (GSO: see the module's docstring)."""
        base = Path("/sys/class/net") / self.veth / "statistics"
        # The outside end receives what the host sends.
        return {"sent": int((base / "rx_bytes").read_text()),
                "received": int((base / "tx_bytes").read_text())}


def _no_ipv6(dev):
    p = Path("/proc/sys/net/ipv6/conf") / dev / "disable_ipv6"
    if p.exists():
        p.write_text("1\n")


class Lan:
    """A bridge and the hosts on it; see the module's docstring."""

    def __init__(self, subnet=SUBNET):
        self.run = None         # set by start(), with the lock
        self.subnet = subnet
        self.hosts = {}
        self._lock_fd = None

    @property
    def bridge(self):
        return self.run + "br"

    def _take_lock(self):
        """Picks a run id no other run holds and locks it. The file is
        locked under a name sweep() ignores and then linked in place, so a
        sweep never finds it free, and an id in use is never taken over."""
        RUN_DIR.mkdir(mode=0o755, exist_ok=True)
        tmp = RUN_DIR / (".tmp.%d.%s" % (os.getpid(), secrets.token_hex(4)))
        fd = os.open(str(tmp), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, b"%d\n" % os.getpid())
            for _ in range(100):
                run = NAME_PREFIX + secrets.token_hex(3)
                try:
                    os.link(str(tmp), str(RUN_DIR / (run + ".lock")))
                except FileExistsError:
                    continue
                self.run, self._lock_fd = run, fd
                return
            raise RuntimeError("no free run id in %s" % RUN_DIR)
        finally:
            tmp.unlink()
            if self._lock_fd is None:
                os.close(fd)

    def _release_lock(self):
        if self._lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                (RUN_DIR / (self.run + ".lock")).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def start(self):
        """Takes the run's lock and makes the bridge. Raises Unavailable
        where a namespace or a bridge cannot be made."""
        self._take_lock()
        probe = "%s-probe" % self.run
        try:
            ip("netns", "add", probe)
            ip("netns", "del", probe)
            ip("link", "add", self.bridge, "type", "bridge")
        except RuntimeError as e:
            raise Unavailable(str(e)) from None
        _no_ipv6(self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name):
        """A new host NAME with the next address (.1, .2, ...)."""
        assert name not in self.hosts, name
        host = Host(self, name, len(self.hosts) + 1)
        assert len(host.veth) <= 15, host.veth
        self.hosts[name] = host
        host._make()
        return host

    def teardown(self):
        """Removes every host, link and the bridge; returns what is left."""
        problems = []
        if self.run is None:
            return problems
        for host in self.hosts.values():
            stray = [p for p in _netns_pids(host.ns) if snoopnodes.pid_alive(p)]
            if stray:
                problems.append("processes %s still ran on host %s" % (
                    stray, host.name))
        left = remove_run(self.run)
        left += leftovers(self.run)
        if left:
            problems.append("left behind: %s" % ", ".join(left))
        self._release_lock()
        return problems


_swept = [False]


@contextlib.contextmanager
def lan(subnet=SUBNET):
    """A Lan for a test or a module; skips where namespaces cannot be made
    (fails instead under CI=true, where they must run) and always removes
    everything it made. The first one of a process sweeps up after runs
    that died before their teardown."""
    reason = unavailable_reason()
    if reason:
        _unavailable(reason)
    if not _swept[0]:
        _swept[0] = True
        sweep()
    net = Lan(subnet)
    try:
        try:
            net.start()
        except Unavailable as e:
            _unavailable("cannot make network namespaces here: %s" % e)
        yield net
    finally:
        # Raised here, a failure of the body stays attached as context.
        problems = net.teardown()
        assert not problems, "netns teardown: %s" % "; ".join(problems)


def _unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail("multi-host tests cannot run in CI: %s" % reason,
                    pytrace=False)
    pytest.skip("multi-host tests skipped: %s" % reason)


def nss_wrapper_lib():
    """The path of libnss_wrapper.so (package libnss-wrapper), or None."""
    import glob
    for pattern in NSS_WRAPPER_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def use_hosts_file(snoop, path, names):
    """Every snoopfs process SNOOP starts from now on resolves NAMES
    ({name: address}) from the hosts file PATH, written here, before
    anything else (nss_wrapper); nothing global changes. Skips where
    nss_wrapper is missing (fails under CI=true)."""
    lib = nss_wrapper_lib()
    if lib is None:
        _unavailable("libnss_wrapper.so is missing (apt-get install "
                     "libnss-wrapper)")
    Path(path).write_text("".join("%s %s\n" % (a, n)
                                  for n, a in sorted(names.items())))
    snoopnodes.preload(snoop.env, lib)
    snoop.env["NSS_WRAPPER_HOSTS"] = str(path)


def wait_counters_reach(host, key, nbytes, timeout, interval=0.02):
    """Waits until HOST's counters()[KEY] reached NBYTES; returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        v = host.counters()[key]
        if v >= nbytes or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
