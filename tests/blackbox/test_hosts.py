"""snoopfs across hosts: the CA and three nodes, each on a host of its own.

How the hosts are built (netns.py): each host is a network namespace with
one veth pair, whose inside end (eth0) has the host's address 10.77.0.N/24
and whose outside end is a port of a bridge in the root namespace. The
bridge has no address, and the hosts have no default route, so the hosts
reach each other and nothing else, and nothing of the root namespace goes
through the bridge. A node runs on its host because its daemon is started
with `nsenter --net=/run/netns/NS snoopfs mount ...`: only the network
namespace changes, so the FUSE mount is in the tests' mount namespace and
they read and write the tree as everywhere else. Every node listens on its
own host's address and port 7000, as an operator would set it up. The link
of a host is the outside end of its veth: pulling it (ip link set down), a
tbf on both its ends, and its byte counters act on that host's traffic
only. The hosts, the links and the bridge are removed after the module,
also when a test fails or the run is interrupted; a run killed outright is
swept up by the next one. Without root (or without ip/tc/nsenter) these
tests skip and say why; under CI=true they fail instead, since CI must
run them.

SNOOPFS_HOSTS_RESUME_MIB and SNOOPFS_HOSTS_OUTAGE_S shrink the interrupted
transfer (default 200 MiB and 60 s, as issue 19 asks); the outage must
outlast the nodes' I/O timeouts (30 s), or the connection survives it and
the test says so. The whole file takes about 2 minutes, 75 s of which are
that test (60 s with the link down).
"""

import json
import os
import time

import pytest

import netns
from snoopnodes import (Cluster, bounded, module_cluster, run_tool,
                        sha256_file, wait_delivered, wait_until)

NODES = ("alice", "bob", "carol")
HOSTS = ("ca",) + NODES

TBF_RATE = 50 * 1000 * 1000         # bit/s
TBF_SIZE = 100 << 20
TBF_MIN_SHARE = 0.87                # of the line rate, as goodput

RESUME_SIZE = int(os.environ.get("SNOOPFS_HOSTS_RESUME_MIB", "200")) << 20
OUTAGE_S = float(os.environ.get("SNOOPFS_HOSTS_OUTAGE_S", "60"))
RESUME_WIRE_MAX = 1.1               # bytes on the wire per byte of the file
# The resumed transfer is shaped so that it would take about this long,
# which leaves time to pull the link in its middle.
RESUME_TRANSFER_S = 8

SMALL_TIMEOUT = 30                  # a small file between hosts that are up
# Nodes ask the CA every REFRESH s, so that the CA's outage spans several
# of their refreshes.
REFRESH = 2
CA_OUTAGE_MIN_S = 3 * REFRESH


@pytest.fixture(scope="module")
def lan():
    with netns.lan() as net:
        for name in HOSTS:
            net.add_host(name)
        yield net


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory, lan):
    def build(c):
        c.init_ca("ca", **lan.hosts["ca"].node_kw())
        for name in NODES:
            c.add_node(name, extra=("--refresh", str(REFRESH)),
                       **lan.hosts[name].node_kw())
        c.wait_all_know_all()
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "hosts", build)


@pytest.fixture(scope="module")
def nodes(net, lan):
    """The nodes, each checked to run on its own host and to see an
    outbox folder for every other."""
    for name in HOSTS:
        node = net.nodes[name]
        pid = node.read_pid()
        assert pid, name
        assert (os.stat("/proc/%d/ns/net" % pid).st_ino
                == os.stat(lan.hosts[name].netns_path).st_ino), (
            "the daemon of %s does not run in its host's namespace" % name)
        assert node.addr == "%s:%d" % (lan.hosts[name].ip, netns.PORT)
    ok = wait_until(lambda: all(
        os.path.isdir(str(net.nodes[a].mnt / "outbox" / b))
        for a in HOSTS for b in HOSTS if a != b), 20)
    assert ok, "outbox folders did not appear for every peer"
    return net.nodes


@pytest.fixture
def tidy_links(lan):
    """Every link up and unshaped after the test, whatever happened."""
    yield lan
    for host in lan.hosts.values():
        host.link_up()
        host.unshape()


# Exit 0 once a TCP connection to HOST PORT is made, 1 with the error if
# it cannot be made within 2 s.
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError as e:
    sys.exit("%s" % e)
"""


def test_hosts_reach_each_other_and_nothing_else(nodes, tidy_links):
    """The harness itself: a host reaches the others' nodes over its link
    and has no route anywhere else; the bridge carries no address and no
    route of the root namespace; a pulled link cuts its host off."""
    lan = tidy_links
    alice, bob = lan.hosts["alice"], lan.hosts["bob"]
    r = alice.run("python3", "-c", CONNECT, bob.ip, netns.PORT)
    assert r.returncode == 0, r.stderr
    r = alice.run("ip", "-4", "route", "show")
    assert r.stdout.split() == ["%s.0/24" % netns.SUBNET, "dev", netns.INNER_DEV,
                                "proto", "kernel", "scope", "link", "src",
                                alice.ip], r.stdout
    r = alice.run("python3", "-c", CONNECT, "192.0.2.1", 7)   # TEST-NET-1
    assert r.returncode != 0 and "unreachable" in r.stderr, r.stderr
    assert netns.ip("-4", "addr", "show", "dev", lan.bridge).stdout == ""
    assert netns.ip("route", "show", "dev", lan.bridge).stdout == ""
    bob.link_down()
    r = alice.run("python3", "-c", CONNECT, bob.ip, netns.PORT)
    assert r.returncode != 0, "bob answered with its link down"
    bob.link_up()
    assert bob.link_is_up()


def random_file(path, size):
    with open(str(path), "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    return sha256_file(path)


def send(nodes, sender, receiver, rel, data):
    """Writes DATA to SENDER's outbox/RECEIVER/REL; returns its SHA-256."""
    import hashlib
    nodes[sender].write_bytes("outbox/%s/%s" % (receiver, rel), data)
    return hashlib.sha256(data).hexdigest()


def deliver_all(nodes, pairs, tag, size=64 << 10, timeout=SMALL_TIMEOUT):
    """Sends one file of SIZE random bytes for each (sender, receiver) in
    PAIRS at once and waits for each; returns {pair: seconds from the
    write to the file verified in the inbox} (measured while polling, so
    an upper bound)."""
    sent = {}
    for a, b in pairs:
        data = os.urandom(size)
        rel = "%s-%s-%s.bin" % (tag, a, b)
        t0 = time.monotonic()
        sent[(a, b)] = (rel, send(nodes, a, b, rel, data), t0)
    took = {}
    for (a, b), (rel, digest, t0) in sent.items():
        wait_delivered(nodes[b], a, rel, digest, size=size, timeout=timeout)
        took[(a, b)] = time.monotonic() - t0
    return took


def test_every_pair_delivers_across_hosts(nodes, lan):
    pairs = [(a, b) for a in HOSTS for b in HOSTS if a != b]
    before = {n: lan.hosts[n].counters() for n in HOSTS}
    size = 256 << 10
    took = deliver_all(nodes, pairs, "pair", size=size)
    print("pairs: %d files of %d KiB, the slowest in %.0f ms" % (
        len(took), size >> 10, 1000 * max(took.values())))
    # The files crossed the links: each host sent at least what it shipped
    # (to three peers) and received at least what was shipped to it.
    for n in HOSTS:
        now = lan.hosts[n].counters()
        assert now["sent"] - before[n]["sent"] >= 3 * size, (n, before[n], now)
        assert now["received"] - before[n]["received"] >= 3 * size, (
            n, before[n], now)


def test_ttp_sum_across_hosts(nodes):
    """The CA adds the inputs that parties on three other hosts send it and
    answers each of them (snoopfs smc ttp-sum)."""
    inputs = {"alice": "42", "bob": "-7.5", "carol": "1000.25"}
    rid = "hosts-ttp-%d" % os.getpid()
    ca = nodes["ca"]
    p = ca.snoop.popen("smc", "ttp-sum", "--mount", ca.mnt, "--round", rid,
                       "--parties", ",".join(inputs), "--timeout", 60)
    try:
        for name, v in inputs.items():
            folder = nodes[name].mnt / "outbox/ca/smc" / rid
            bounded(os.makedirs, str(folder), 0o777, True)
            nodes[name].write_bytes("outbox/ca/smc/%s/input" % rid,
                                    (v + "\n").encode())
        o, e = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, e
    assert o == "sum = 1034.75\n"
    for name in inputs:
        rel = "inbox/ca/smc/%s/result" % rid
        assert wait_until(lambda: nodes[name].exists(rel), SMALL_TIMEOUT), (
            name, nodes[name].log_tail())
        assert nodes[name].read_text(rel) == "1034.75\n"


def test_peers_deliver_while_ca_host_is_down(nodes, tidy_links):
    """With the CA's link pulled, the nodes go on delivering to each other
    as fast as before; what is for the CA waits and arrives once it is back.
    """
    pairs = [(a, b) for a in NODES for b in NODES if a != b]
    ca_host = tidy_links.hosts["ca"]
    ca_host.link_down()
    down_at = time.monotonic()
    for_ca = os.urandom(4096)
    digest = send(nodes, "alice", "ca", "while-down.bin", for_ca)
    rnd = 0
    while rnd < 2 or time.monotonic() - down_at < CA_OUTAGE_MIN_S:
        took = deliver_all(nodes, pairs, "cadown%d" % rnd)
        # A delivery that waited on the CA would take its connect timeout.
        slow = {p: t for p, t in took.items() if t > 3}
        assert not slow, "deliveries slow while the CA is down: %s" % slow
        rnd += 1
        time.sleep(1)
    assert not nodes["ca"].exists("inbox/alice/while-down.bin")
    ca_host.link_up()
    wait_delivered(nodes["ca"], "alice", "while-down.bin", digest,
                   size=len(for_ca), timeout=90)


@pytest.fixture
def named_net(fuse_available, snoop, tmp_path):
    """A Lan of its own with the CA, alice and bob, each listening on a
    DNS name (ca.hospital.test, ...) that only the snoopfs processes
    resolve (netns.use_hosts_file). The cluster goes before the Lan."""
    with netns.lan() as lan:
        names = {}
        for name in ("ca", "alice", "bob"):
            names["%s.hospital.test" % name] = lan.add_host(name).ip
        netns.use_hosts_file(snoop, tmp_path / "hosts", names)
        c = Cluster(snoop, tmp_path / "c")
        c.base.mkdir()
        try:
            def where(name):
                kw = lan.hosts[name].node_kw()
                kw["host"] = "%s.hospital.test" % name
                return kw
            c.init_ca("ca", **where("ca"))
            for name in ("alice", "bob"):
                c.add_node(name, **where(name))
            c.wait_all_know_all()
            yield c
        finally:
            problems = c.teardown()
        assert not problems, "\n\n".join(problems)


def test_dns_names_in_listen(named_net):
    """Nodes listening on names: the certificates carry the names, and
    files go both ways between the nodes and to the CA."""
    nodes = named_net.nodes
    for name in ("ca", "alice", "bob"):
        r = named_net.snoop.run("inspect", "--json",
                                nodes["alice"].mnt / "certs" / (name + ".pem"))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["address"] == "%s.hospital.test:%d" % (
            name, netns.PORT)
    deliver_all(nodes, [("alice", "bob"), ("bob", "alice"), ("alice", "ca"),
                        ("ca", "bob")], "named")


def timed_delivery(nodes, sender, receiver, src, size, timeout):
    """cp SRC to SENDER's outbox/RECEIVER, then waits for the file to be in
    RECEIVER's inbox at its full size. Returns (seconds from cp start to
    that moment, REL). The receiver shows a file only once it verified it
    whole, so that moment is the end of the transfer; the test's own hash
    comes after and is not counted."""
    rel = src.name
    path = nodes[receiver].mnt / "inbox" / sender / rel
    t0 = time.monotonic()
    r = run_tool(["cp", src, nodes[sender].mnt / "outbox" / receiver / rel],
                 timeout=timeout)
    assert r.returncode == 0, r.stderr

    def arrived():
        try:
            return bounded(os.stat, str(path)).st_size == size
        except OSError:
            return False
    assert wait_until(arrived, timeout, interval=0.05), (
        "%s not in %s's inbox within %d s\n%s" % (
            rel, receiver, timeout, nodes[sender].log_tail()))
    return time.monotonic() - t0, rel


def test_tbf_link_carries_file_at_line_rate(nodes, tidy_links, tmp_path):
    """A 100 MiB file over alice's link shaped to 50 Mbit/s (tbf both ways)
    arrives at 87% of the line rate or more, counted as goodput: the file's
    bytes over the time from the start of cp to the file verified in bob's
    inbox."""
    alice = tidy_links.hosts["alice"]
    src = tmp_path / "tbf.bin"
    digest = random_file(src, TBF_SIZE)
    alice.shape(TBF_RATE)
    assert alice.qdiscs().count("tbf") == 2, alice.qdiscs()
    before = alice.counters()
    line_s = TBF_SIZE * 8 / TBF_RATE
    took, rel = timed_delivery(nodes, "alice", "bob", src, TBF_SIZE,
                               timeout=line_s * 4 + 60)
    wire = alice.counters()["sent"] - before["sent"]
    wait_delivered(nodes["bob"], "alice", rel, digest, size=TBF_SIZE)
    goodput = TBF_SIZE * 8 / took
    share = goodput / TBF_RATE
    print("tbf: %d MiB in %.2f s: goodput %.1f Mbit/s = %.1f%% of %d Mbit/s;"
          " %d bytes on the wire (%.3fx the file)" % (
              TBF_SIZE >> 20, took, goodput / 1e6, share * 100,
              TBF_RATE // 1000000, wire, wire / TBF_SIZE))
    # The link really was the limit: nothing crossed it faster.
    assert wire >= TBF_SIZE
    assert wire * 8 / took <= TBF_RATE * 1.02, "the tbf did not hold"
    assert share >= TBF_MIN_SHARE, (
        "goodput %.1f%% of the line rate (%.2f s for %d MiB; %.2f s at line"
        " rate)" % (share * 100, took, TBF_SIZE >> 20, line_s))


def test_link_down_mid_transfer_resumes(nodes, tidy_links, tmp_path):
    """alice's link goes down for OUTAGE_S in the middle of a large file to
    carol; once it is back the transfer resumes where it broke: at most
    1.1x the file's bytes cross alice's link for it in all."""
    alice = tidy_links.hosts["alice"]
    src = tmp_path / "resume.bin"
    digest = random_file(src, RESUME_SIZE)
    rate = RESUME_SIZE * 8 // RESUME_TRANSFER_S
    alice.shape(rate)
    base = alice.counters()["sent"]
    cap = base + RESUME_WIRE_MAX * RESUME_SIZE
    r = run_tool(["cp", src, nodes["alice"].mnt / "outbox/carol" / src.name],
                 timeout=300)
    assert r.returncode == 0, r.stderr
    mid = netns.wait_counters_reach(alice, "sent", base + RESUME_SIZE * 0.5,
                                    timeout=120)
    assert mid >= base + RESUME_SIZE * 0.5, "the transfer never got going"
    outbox = "outbox/carol/" + src.name
    states = set()
    alice.link_down()
    try:
        end = time.monotonic() + OUTAGE_S
        while time.monotonic() < end:
            states.add(nodes["alice"].getxattr(outbox).split(" ")[0])
            time.sleep(min(1, max(0, end - time.monotonic())))
        assert not nodes["carol"].exists("inbox/alice/" + src.name)
    finally:
        alice.link_up()
    # Only a connection that broke tests resuming on a new one (a short
    # outage is carried over by TCP itself).
    assert states - {"sending"}, (
        "the connection outlived the %.0f s outage (states %s): make it "
        "longer than the nodes' I/O timeouts" % (OUTAGE_S, sorted(states)))
    path = "inbox/alice/" + src.name

    def done_or_over():
        if alice.counters()["sent"] > cap:
            return "over"
        try:
            if bounded(os.stat, str(nodes["carol"].mnt / path)).st_size \
                    == RESUME_SIZE:
                return "done"
        except OSError:
            pass
        return None
    # Retries back off to 60 s, then the rest of the file at the shaped rate.
    state = wait_until(done_or_over, 60 + RESUME_TRANSFER_S * 3 + 60,
                       interval=0.1)
    wire = alice.counters()["sent"] - base
    print("resume: %d MiB, link down %.0f s at %.0f%%: %d bytes on the wire"
          " (%.2fx the file), %s" % (RESUME_SIZE >> 20, OUTAGE_S,
                                     100.0 * (mid - base) / RESUME_SIZE, wire,
                                     wire / RESUME_SIZE, state))
    assert state != "over", (
        "%.2fx the file crossed the link before it arrived (at most %.1fx)"
        % (wire / RESUME_SIZE, RESUME_WIRE_MAX))
    assert state == "done", "not delivered after the link came back\n%s" % (
        nodes["alice"].log_tail())
    wait_delivered(nodes["carol"], "alice", src.name, digest,
                   size=RESUME_SIZE)
    assert wire <= RESUME_WIRE_MAX * RESUME_SIZE
