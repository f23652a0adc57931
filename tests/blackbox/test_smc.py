"""snoopfs smc: secure sums and statistics through the mounted tree.

One cluster for the module: the CA (the trusted third party of the ideal
model) and five nodes. Each party's command runs concurrently, as separate
sites would run it; every party must print the same answer, equal to the
plain computation. Privacy is checked from the outside: what lands in the
inboxes is watched while a round runs, and no file there may hold a
party's input or a per-party total.
"""

import csv
import math
import os
import random
import re
import threading
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from snoopnodes import build_ca_and, module_cluster, wait_until

NODES = ("alice", "bob", "carol", "dave", "erin")
P = (1 << 127) - 1
SCALE = 10 ** 6
RUN_TIMEOUT = 120       # one party's whole command, ASan included


build = build_ca_and(*NODES)


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "smc", build)


@pytest.fixture(scope="module")
def nodes(net):
    every = ("ca",) + NODES
    ok = wait_until(lambda: all(
        os.path.isdir(str(net.nodes[a].mnt / "outbox" / b))
        for a in every for b in every if a != b), 20)
    assert ok, "outbox folders did not appear for every peer"
    return net.nodes


_round = [0]


def new_round(label):
    _round[0] += 1
    return "%s-%d-%d" % (label, os.getpid(), _round[0])


def run_parties(nodes, cmd, round_id, per_party, timeout=30, late=None,
                watcher=None):
    """Runs `snoopfs smc CMD` on every party at once.

    PER_PARTY maps a node name to its extra arguments; the party list is
    its keys. With LATE (a party), that one starts only once WATCHER has
    read the others' shares for it in its inbox: files that live for
    milliseconds otherwise might all escape a watcher that polls.
    Returns {name: (returncode, stdout, stderr)}.
    """
    parties = ",".join(per_party)
    procs = {}

    def start(name):
        node = nodes[name]
        procs[name] = node.snoop.popen(
            "smc", cmd, "--mount", node.mnt, "--round", round_id,
            "--parties", parties, "--timeout", timeout, *per_party[name])

    for name in per_party:
        if name != late:
            start(name)
    if late:
        # Until WATCHER (an InboxSnooper) has read them.
        assert wait_until(lambda: all(
            (late, "%s/smc/%s/share" % (s, round_id)) in watcher.seen
            for s in per_party if s != late), timeout), "no shares for late"
        start(late)
    out = {}
    for name, p in procs.items():
        try:
            o, e = p.communicate(timeout=RUN_TIMEOUT)
        except Exception:
            p.kill()
            o, e = p.communicate()
            raise AssertionError("smc %s on %s did not finish" % (cmd, name))
        out[name] = (p.returncode, o, e)
    return out


def fixed(text):
    """A decimal as the commands read it: rounded half away from zero."""
    return Decimal(text).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def plain(v):
    """Decimal printed as `smc sum` prints it ("-12.5", "42")."""
    s = format(v.normalize(), "f")
    return "0" if s in ("-0", "0") else s


def whole(data):
    """False for what a read racing the file's deletion cut short."""
    lines = data.split(b"\n")
    head = lines[0].split(b" ")
    if not data.endswith(b"\n") or len(head) < 3:
        return False
    # A share or partial names its length; an abort is one line of text.
    return head[2] == b"abort" or (len(head) == 7 and head[5].isdigit() and
                                   int(head[5]) == len(lines) - 2)


def smc_files(nodes, round_id, only_whole=False):
    """{(node, path): bytes} of every smc file of ROUND in every inbox."""
    found = {}
    for name in ("ca",) + NODES:
        inbox = nodes[name].mnt / "inbox"
        try:
            senders = os.listdir(str(inbox))
        except OSError:
            continue
        # Only inbox/SENDER/smc/ROUND/: a walk of every inbox is too slow
        # to catch files that live for milliseconds.
        for sender in senders:
            folder = inbox / sender / "smc" / round_id
            try:
                files = os.listdir(str(folder))
            except OSError:
                continue
            for f in files:
                rel = "%s/smc/%s/%s" % (sender, round_id, f)
                try:
                    data = (folder / f).read_bytes()
                except OSError:
                    continue
                if whole(data) or not only_whole:
                    found[(name, rel)] = data
    return found


class InboxSnooper:
    """Reads every smc file of a round that shows up in any inbox."""

    def __init__(self, nodes, round_id):
        self.nodes, self.round_id = nodes, round_id
        self.seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.seen.update(smc_files(self.nodes, self.round_id, True))
            except OSError:
                pass
            self._stop.wait(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def residues(data):
    """The numbers after the header line of an smc file (none in an abort)."""
    lines = data.decode().splitlines()
    assert lines[0].startswith("snoopfs-smc 2 "), data
    if lines[0].split(" ")[2] == "abort":
        return []
    return [int(x) for x in lines[1:]]


def encode(v):
    return v % P


def assert_private(seen, secrets, texts):
    """No file seen holds any of SECRETS (as residues) or TEXTS verbatim."""
    assert seen, "the snooper saw no smc file at all"
    bad = {encode(s) for s in secrets} | {encode(-s) for s in secrets}
    for (node, rel), data in seen.items():
        for t in texts:
            assert data.strip() != t.encode(), (node, rel, data)
            assert t.encode() not in data.split(b"\n")[1:], (node, rel, data)
        for r in residues(data):
            assert 0 <= r < P
            assert r not in bad, "%s:%s holds a secret value" % (node, rel)


def same_output(results):
    outs = {name: r[1] for name, r in results.items()}
    for name, (rc, o, e) in results.items():
        assert rc == 0, "%s exited %d: %s" % (name, rc, e)
    assert len(set(outs.values())) == 1, outs
    return next(iter(outs.values()))


# --- the real model: additive secret sharing --------------------------------

def test_sum_three_parties_negative_and_decimal(nodes):
    inputs = {"alice": "-12.5", "bob": "3.25", "carol": "0.0000005"}
    rid = new_round("sum3")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "sum", rid,
                          {n: ["--input", v] for n, v in inputs.items()},
                          late="carol", watcher=snoop)
    out = same_output(res)
    want = sum(fixed(v) for v in inputs.values())
    assert out == "sum = %s\n" % plain(want), out
    assert out == "sum = -9.249999\n"
    assert_private(snoop.seen, [int(fixed(v) * SCALE) for v in inputs.values()],
                   list(inputs.values()))
    # Used shares and partial sums are gone from every inbox.
    assert smc_files(nodes, rid) == {}


def test_sum_five_parties(nodes):
    rng = random.Random(5)
    inputs = {n: "%d.%06d" % (rng.randint(-10 ** 12 + 1, 10 ** 12 - 1),
                              rng.randint(0, 999999)) for n in NODES}
    inputs["erin"] = "-1000000000000"   # the bound itself is allowed
    rid = new_round("sum5")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "sum", rid,
                          {n: ["--input", v] for n, v in inputs.items()},
                          late="erin", watcher=snoop)
    out = same_output(res)
    assert out == "sum = %s\n" % plain(sum(fixed(v) for v in inputs.values()))
    assert_private(snoop.seen, [int(fixed(v) * SCALE) for v in inputs.values()],
                   list(inputs.values()))


def test_sum_rejects_out_of_range_input(nodes):
    r = nodes["alice"].snoop.run(
        "smc", "sum", "--mount", nodes["alice"].mnt, "--round",
        new_round("big"), "--parties", "alice,bob,carol", "--input",
        "1000000000000.5")
    assert r.returncode == 1
    assert "out of range" in r.stderr and "10^12" in r.stderr


# --- the ideal model: the CA adds --------------------------------------------

def test_ttp_sum(nodes):
    inputs = {"alice": "42", "bob": "-7.5", "carol": "0.25", "dave": "1000"}
    rid = new_round("ttp")
    ca = nodes["ca"]
    p = ca.snoop.popen("smc", "ttp-sum", "--mount", ca.mnt, "--round", rid,
                       "--parties", ",".join(inputs), "--timeout", 30)
    for name, v in inputs.items():
        # What a party types: the shell only.
        os.makedirs(str(nodes[name].mnt / "outbox/ca/smc" / rid), exist_ok=True)
        with open(str(nodes[name].mnt / "outbox/ca/smc" / rid / "input"),
                  "w") as f:
            f.write(v + "\n")
    o, e = p.communicate(timeout=RUN_TIMEOUT)
    want = plain(sum(fixed(v) for v in inputs.values()))
    assert p.returncode == 0, e
    assert o == "sum = %s\n" % want
    for name in inputs:
        path = nodes[name].mnt / "inbox/ca/smc" / rid / "result"
        assert wait_until(lambda: path.exists(), 30), path
        assert path.read_text() == want + "\n"
    # The same total from the protocol with no trusted party.
    rid2 = new_round("ttp-vs-sum")
    out = same_output(run_parties(
        nodes, "sum", rid2, {n: ["--input", v] for n, v in inputs.items()}))
    assert out == "sum = %s\n" % want
    # The inputs were consumed on the CA.
    assert smc_files(nodes, rid) == {} or all(
        k[0] != "ca" for k in smc_files(nodes, rid))


# --- secure statistics --------------------------------------------------------

def write_ages(path, rng, rows):
    """A CSV of patient ages; a few cells missing or not numbers."""
    values, skipped = [], 0
    with open(str(path), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient", "age", "ward"])
        for i in range(rows):
            k = rng.random()
            if k < 0.01:
                cell = ""
                skipped += 1
            elif k < 0.015:
                cell = "unknown"
                skipped += 1
            else:
                cell = "%d.%02d" % (rng.randint(0, 104), rng.randint(0, 99))
                values.append(Fraction(Decimal(cell)))
            w.writerow(["p%d" % i, cell, rng.choice(["A", "B, east"])])
    return values, skipped


def stats_table(text):
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and not line.startswith("note"):
            out[k.strip()] = v.strip()
    return out


def test_stats_over_three_csv_files(nodes, tmp_path):
    rng = random.Random(7)
    parties = ("alice", "bob", "carol")
    files, values, skipped = {}, [], 0
    for name in parties:
        files[name] = tmp_path / ("%s.csv" % name)
        v, s = write_ages(files[name], rng, 10000)
        values += v
        skipped += s
    rid = new_round("stats")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "stats", rid, {
            n: ["--csv", files[n], "--column", "age"] for n in parties},
            late="carol", watcher=snoop)
    for name, (rc, o, e) in res.items():
        assert rc == 0, "%s: %s" % (name, e)
    # Every party prints the same table (the note counts its own skips).
    tables = {n: [l for l in r[1].splitlines() if not l.startswith("note")]
              for n, r in res.items()}
    assert len({tuple(t) for t in tables.values()}) == 1, tables
    t = stats_table(res["alice"][1])
    n = len(values)
    total = sum(values)
    mean = total / n
    m2 = sum((x - mean) ** 2 for x in values)
    assert t["count"] == str(n)
    assert Decimal(t["sum"]) == Decimal(total.numerator) / total.denominator
    assert abs(Fraction(Decimal(t["mean"])) - mean) <= Fraction(1, 2 * SCALE)
    for key, want in (("variance (population)", m2 / n),
                      ("variance (sample)", m2 / (n - 1))):
        got = Fraction(Decimal(t[key]))
        assert abs(got - want) <= Fraction(1, 10 ** 6), (key, t[key], float(want))
    for key, var in (("std dev (population)", m2 / n),
                     ("std dev (sample)", m2 / (n - 1))):
        assert abs(float(t[key]) - math.sqrt(var)) <= 1e-6, (key, t[key])
    assert re.search(r"note: skipped %d missing or non-numeric cells" % skipped,
                     res["alice"][1]), res["alice"][1]
    # No inbox held a party's count, sum or sum of squares.
    per_party = []
    for name in parties:
        with open(str(files[name])) as f:
            xs = [int(fixed(r["age"]) * SCALE) for r in csv.DictReader(f)
                  if re.fullmatch(r"[0-9.]+", r["age"])]
        per_party += [len(xs), sum(xs), sum(x * x for x in xs)]
    assert_private(snoop.seen, per_party, [])


# --- rounds and failures ------------------------------------------------------

def test_missing_party_and_fresh_shares(nodes):
    """carol never joins: alice and bob fail naming her, after --timeout.

    What reached carol's inbox meanwhile are the shares alice and bob made
    of the same inputs in two rounds: they differ run to run, and none of
    them is an input.
    """
    shares = []
    for _ in range(2):
        rid = new_round("missing")
        parties = "alice,bob,carol"
        procs = {n: nodes[n].snoop.popen(
            "smc", "sum", "--mount", nodes[n].mnt, "--round", rid,
            "--parties", parties, "--input", "42", "--timeout", 3)
            for n in ("alice", "bob")}
        for name, p in procs.items():
            o, e = p.communicate(timeout=RUN_TIMEOUT)
            assert p.returncode == 2, (name, p.returncode, o, e)
            assert o == ""
            assert "missing party: carol" in e, e
        inbox = nodes["carol"].mnt / "inbox"
        for sender in ("alice", "bob"):
            path = inbox / sender / "smc" / rid / "share"
            assert wait_until(lambda: path.exists(), 30), path
            data = path.read_bytes()
            assert data.strip() != b"42"
            shares += residues(data)
            path.unlink()
    assert len(shares) == 4 and len(set(shares)) == 4, shares
    assert encode(42 * SCALE) not in shares and 42 not in shares
    # 127 random bits each: all four below 2^100 would be a broken RNG.
    assert any(s >= 1 << 100 for s in shares)


def test_repeated_round_refused(nodes):
    rid = new_round("again")
    per = {n: ["--input", "1"] for n in ("alice", "bob", "carol")}
    assert same_output(run_parties(nodes, "sum", rid, per)) == "sum = 3\n"
    r = nodes["alice"].snoop.run(
        "smc", "sum", "--mount", nodes["alice"].mnt, "--round", rid,
        "--parties", "alice,bob,carol", "--input", "1", "--timeout", 2)
    assert r.returncode == 2 and r.stdout == ""
    assert "used before" in r.stderr and rid in r.stderr


def test_round_with_old_partial_in_inbox_refused(nodes):
    rid = new_round("stale")
    bob, dave = nodes["bob"], nodes["dave"]
    os.makedirs(str(bob.mnt / "outbox/dave/smc" / rid))
    (bob.mnt / "outbox/dave/smc" / rid / "partial").write_text("1\n")
    path = dave.mnt / "inbox/bob/smc" / rid / "partial"
    assert wait_until(lambda: path.exists(), 30)
    r = dave.snoop.run("smc", "sum", "--mount", dave.mnt, "--round", rid,
                       "--parties", "bob,dave,erin", "--input", "1")
    assert r.returncode == 2
    assert "used before" in r.stderr and "inbox/bob/smc/%s/partial" % rid in r.stderr
    path.unlink()


def test_party_lists_that_differ_fail(nodes):
    rid = new_round("lists")
    procs = {
        "alice": nodes["alice"].snoop.popen(
            "smc", "sum", "--mount", nodes["alice"].mnt, "--round", rid,
            "--parties", "alice,bob", "--input", "5", "--timeout", 5),
        "bob": nodes["bob"].snoop.popen(
            "smc", "sum", "--mount", nodes["bob"].mnt, "--round", rid,
            "--parties", "alice,bob,dave", "--input", "6", "--timeout", 5),
    }
    errs = {}
    for name, p in procs.items():
        o, errs[name] = p.communicate(timeout=RUN_TIMEOUT)
        assert p.returncode == 2, (name, o, errs[name])
        assert o == ""
        assert "no result" in errs[name]
    # Each sees a share made for another party list and names its sender.
    assert "from bob" in errs["alice"], errs["alice"]
    assert "from alice" in errs["bob"], errs["bob"]


def test_malformed_share_names_sender(nodes):
    rid = new_round("bad")
    erin, dave = nodes["erin"], nodes["dave"]
    os.makedirs(str(dave.mnt / "outbox/erin/smc" / rid))
    (dave.mnt / "outbox/erin/smc" / rid / "share").write_text("12345\n")
    r = erin.snoop.run("smc", "sum", "--mount", erin.mnt, "--round", rid,
                       "--parties", "dave,erin,alice", "--input", "1",
                       "--timeout", 20)
    assert r.returncode == 2 and r.stdout == ""
    assert "from dave" in r.stderr, r.stderr


@pytest.mark.parametrize("parties,code,words", [
    ("alice,alice,bob", 1, "twice"),
    ("alice", 1, "at least 2"),
    ("bob,carol", 1, "must include this node"),
    ("alice,bob,nobody", 2, "unknown party nobody"),
    ("alice,b/c", 1, "--parties"),
])
def test_bad_party_lists(nodes, parties, code, words):
    r = nodes["alice"].snoop.run(
        "smc", "sum", "--mount", nodes["alice"].mnt, "--round",
        new_round("usage"), "--parties", parties, "--input", "1")
    assert r.returncode == code, r.stderr
    assert words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_ttp_refuses_itself_as_party(nodes):
    r = nodes["ca"].snoop.run(
        "smc", "ttp-sum", "--mount", nodes["ca"].mnt, "--round",
        new_round("ttpself"), "--parties", "ca,alice,bob")
    assert r.returncode == 1 and "trusted third party" in r.stderr


def test_ttp_missing_party_reports_to_the_others(nodes):
    rid = new_round("ttpmiss")
    alice = nodes["alice"]
    os.makedirs(str(alice.mnt / "outbox/ca/smc" / rid))
    (alice.mnt / "outbox/ca/smc" / rid / "input").write_text("1\n")
    r = nodes["ca"].snoop.run("smc", "ttp-sum", "--mount", nodes["ca"].mnt,
                              "--round", rid, "--parties", "alice,bob",
                              "--timeout", 3)
    assert r.returncode == 2 and "missing party: bob" in r.stderr
    path = alice.mnt / "inbox/ca/smc" / rid / "result"
    assert wait_until(lambda: path.exists(), 30)
    assert path.read_text().startswith("error: ")
