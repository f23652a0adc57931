"""snoopfs across hosts: the CA and three nodes, each on a host of its own.

How the hosts are built (netns.py): each host is a network namespace with
one veth pair, whose inside end (eth0) has the host's address 10.77.0.N/24
and whose outside end is a port of a bridge in the root namespace. The
bridge has no address, and the hosts have no default route, so the hosts
reach each other and nothing else, and nothing of the root namespace goes
through the bridge. A node runs on its host because its daemon is started
with `nsenter --net=/run/netns/NS snoopfs mount ...`: only the network
namespace changes, so the FUSE mount is in the tests' mount namespace and
they read and write the tree as everywhere else. Every node binds
0.0.0.0:7000 and advertises its own host's address (--advertise
10.77.0.N:7000), as an operator would set it up on a machine with several
addresses; the nodes named in DNS bind their names. The link
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
the test says so. The whole file takes about 3 minutes: 75 s are that
test (60 s with the link down), 45 s the node that loses its link and
moves (30 s of them waiting for the sender to give up, the bound a
silent link is allowed).
"""

import json
import os
import re
import time

import pytest

import netns
from snoopnodes import (Cluster, bounded, cert_info, module_cluster,
                        pid_alive, run_tool, sha256_file, wait_delivered,
                        wait_until)

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
# A sender gives up a connection whose link went silent within this bound
# (man page, "Deploying across hosts": 30 s of unacknowledged data, or of
# no progress of a read or write), plus what a loaded machine adds.
SILENT_LINK_S = 30
SILENT_SLACK_S = 10
# A daemon leaves this soon after its unmount, also with the CA's host down,
# so that a mount right after finds STATE free (it waits 2 s for it).
UNMOUNT_EXIT_S = 2
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
        c.init_ca("ca", **lan.hosts["ca"].node_kw(bind_all=True))
        for name in NODES:
            c.add_node(name, extra=("--refresh", str(REFRESH)),
                       **lan.hosts[name].node_kw(bind_all=True))
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


def cert_address(node, pem):
    """The address in the certificate PEM (a path), as `inspect` reads it."""
    r = node.snoop.run("inspect", "--json", pem)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["address"]


def status(node):
    r = node.snoop.run("status", node.mnt)
    assert r.returncode == 0, r.stderr
    return r.stdout


def status_field(text, field):
    m = re.search(r"^%s:\s+(.*)$" % re.escape(field), text, re.M)
    return m.group(1) if m else None


def test_wildcard_binds_advertise_host_addresses(nodes, lan):
    """Every node binds 0.0.0.0:7000 and advertises its host's address:
    status shows both, the certificates (every node's copy) and a new
    token's mount line carry host addresses, and no wildcard is in any of
    them."""
    addr = {n: "%s:%d" % (lan.hosts[n].ip, netns.PORT) for n in HOSTS}
    for name in HOSTS:
        st = status(nodes[name])
        assert status_field(st, "listening") == "0.0.0.0:%d" % netns.PORT, st
        assert status_field(st, "advertised") == addr[name], st
        for peer in HOSTS:
            got = cert_address(nodes[name], nodes[name].certs / (peer + ".pem"))
            assert got == addr[peer], (name, peer, got)
    ca = nodes["ca"]
    r = ca.snoop.run("token", ca.state, "late-node")
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if "snoopfs mount" in l]
    assert len(line) == 1 and "--ca %s " % addr["ca"] in line[0], r.stdout
    assert "0.0.0.0" not in line[0], line[0]


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


def timed_unmount(node):
    """fusermount3 -u NODE; returns the seconds until its daemon left."""
    pid = node.read_pid()
    assert pid, node.name
    node.pids.add(pid)
    t0 = time.monotonic()
    node.unmount()
    wait_until(lambda: not pid_alive(pid), 30, interval=0.02)
    return time.monotonic() - t0


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
    # alice's refresher is in a call to the unreachable CA (every REFRESH
    # s, each waiting up to 30 s for a connect): an unmount still ends
    # the daemon at once, so that a mount right after finds STATE free.
    alice = nodes["alice"]
    took = timed_unmount(alice)
    assert took <= UNMOUNT_EXIT_S, (
        "alice's daemon took %.1f s to leave with the CA's host down" % took)
    alice.mount()
    deliver_all(nodes, [("alice", "bob"), ("bob", "alice")], "remounted")
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
        c.dns, c.hosts_file, c.lan = names, tmp_path / "hosts", lan
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
    files go both ways between the nodes and to the CA, also after a host
    changed its address and its name followed."""
    nodes = named_net.nodes
    names, hosts, lan = named_net.dns, named_net.hosts_file, named_net.lan
    for name in ("ca", "alice", "bob"):
        r = named_net.snoop.run("inspect", "--json",
                                nodes["alice"].mnt / "certs" / (name + ".pem"))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["address"] == "%s.hospital.test:%d" % (
            name, netns.PORT)
    deliver_all(nodes, [("alice", "bob"), ("bob", "alice"), ("alice", "ca"),
                        ("ca", "bob")], "named")
    # bob's host gets a new address and its name follows (the hosts file
    # stands for DNS): bob, remounted as it was, binds the name's new
    # address, keeps its certificate, and the others find it there,
    # since a name is resolved at every connect.
    serial = cert_info(nodes["bob"].state / "node.pem")[0]
    nodes["bob"].unmount()
    names["bob.hospital.test"] = lan.hosts["bob"].readdress(50)
    netns.use_hosts_file(named_net.snoop, hosts, names)
    nodes["bob"].mount()
    assert cert_info(nodes["bob"].state / "node.pem")[0] == serial
    deliver_all(nodes, [("alice", "bob"), ("bob", "alice"), ("ca", "bob")],
                "renamed")


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


def pubkey(node):
    r = run_tool(["openssl", "x509", "-noout", "-pubkey", "-in",
                  node.state / "node.pem"])
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_silent_link_then_node_moves(nodes, tidy_links, tmp_path):
    """carol's cable is pulled while alice sends her a file that fits in the
    socket buffers (alice has written it all and waits for the receipt):
    alice gives the silent connection up within SILENT_LINK_S. carol's
    daemon leaves at once when unmounted with her link down. Her host then
    gets a new address and she is remounted there (still bound to
    0.0.0.0, with --advertise NEW:7000): the mount has the CA certify the
    new address for the same key before it serves, the others learn it,
    and the file that was pending follows her to the new address."""
    lan = tidy_links
    host, carol, alice = lan.hosts["carol"], nodes["carol"], nodes["alice"]
    size = 1 << 20
    src = tmp_path / "to-carol.bin"
    digest = random_file(src, size)
    host.shape(1000 * 1000)         # about 9 s for the file
    key, serial = pubkey(carol), cert_info(carol.state / "node.pem")[0]
    before = host.counters()["received"]
    r = run_tool(["cp", src, alice.mnt / "outbox/carol" / src.name])
    assert r.returncode == 0, r.stderr
    pending = "outbox/carol/" + src.name
    started = netns.wait_counters_reach(host, "received", before + size // 4,
                                        timeout=30)
    assert started >= before + size // 4, "the transfer never got going"
    assert alice.getxattr(pending).startswith("sending"), (
        alice.getxattr(pending))
    host.link_down()
    t0 = time.monotonic()
    gave_up = wait_until(lambda: not alice.getxattr(pending).startswith(
        "sending"), SILENT_LINK_S + SILENT_SLACK_S, interval=0.2)
    took = time.monotonic() - t0
    assert gave_up, "alice still sending to carol %.0f s after her link went" \
        " silent: %s" % (took, alice.getxattr(pending))
    print("silent link: alice gave up after %.1f s (%s)" % (
        took, alice.getxattr(pending)))
    assert not carol.exists("inbox/alice/" + src.name)

    took = timed_unmount(carol)
    assert took <= UNMOUNT_EXIT_S, (
        "carol's daemon took %.1f s to leave with her link down" % took)
    old = carol.addr
    carol.host = host.readdress(100)
    host.link_up()
    host.unshape()
    carol.mount("--advertise", carol.addr)
    assert pubkey(carol) == key
    assert cert_info(carol.state / "node.pem")[0] != serial
    assert cert_address(carol, carol.state / "node.pem") == carol.addr
    st = status(carol)
    assert status_field(st, "advertised") == carol.addr, st
    assert status_field(st, "listening") == "0.0.0.0:%d" % netns.PORT, st
    # The others learn it from her, or at their next refresh.
    for name in HOSTS:
        if name != "carol":
            assert wait_until(lambda: cert_address(
                nodes[name], nodes[name].certs / "carol.pem") == carol.addr,
                3 * REFRESH + 10), "%s still has carol at %s" % (name, old)
    wait_delivered(carol, "alice", src.name, digest, size=size, timeout=90)
    deliver_all(nodes, [("bob", "carol"), ("carol", "alice"), ("ca", "carol")],
                "moved")


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


def test_ca_moves(nodes, lan):
    """The CA's host gets a new address and the CA is remounted advertising
    it (binding 0.0.0.0 as before): it certifies itself there and tells
    every node, whose node.conf still names the old address. The nodes
    then reach it at the new one: files to outbox/ca/ arrive, their
    refreshes succeed again (status says where the CA answers), and a new
    token's mount line names the new address."""
    ca, host = nodes["ca"], lan.hosts["ca"]
    old = ca.addr
    ca.unmount()
    ca.host = host.readdress(200)
    ca.mount("--advertise", ca.addr)
    assert cert_address(ca, ca.state / "node.pem") == ca.addr
    for name in NODES:
        assert wait_until(lambda: cert_address(
            nodes[name], nodes[name].certs / "ca.pem") == ca.addr, 20), (
            "%s still has the CA at %s" % (name, old))
    deliver_all(nodes, [("alice", "ca"), ("ca", "bob")], "camoved")
    moved = "ca at %s (it moved from %s" % (ca.addr, old)
    for name in NODES:
        # A refresh tries the old address first: up to a connect timeout.
        assert wait_until(lambda: moved in status_field(
            status(nodes[name]), "ca"), 60, interval=0.5), status(nodes[name])
    r = ca.snoop.run("token", ca.state, "after-move")
    assert r.returncode == 0, r.stderr
    assert "--ca %s " % ca.addr in r.stdout, r.stdout
