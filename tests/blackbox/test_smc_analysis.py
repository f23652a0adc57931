"""snoopfs smc: the analyses built on the secure vector sum.

Vector sums, histograms, grouped statistics, regression, correlation and
quantiles, run by 3 and 5 parties over CSV files of 10,000 rows each that
the tests generate; every party must print the same JSON object, equal to
numpy's answer or exact Python arithmetic over the pooled rows. A watcher
reads every smc file that appears in any inbox during a round and checks
that no party's own vector, counts, sums or X'X entries are among them.
"""

import csv
import json
import math
import random
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

# The same cluster fixtures as test_smc.py: a CA and five nodes, one
# cluster for this module.
from test_smc import (NODES, SCALE, InboxSnooper, assert_private, net,
                      new_round, nodes, run_parties, smc_files)

THREE = NODES[:3]
ROWS = 10000
WARDS = ("A", "B", "C", "D")

assert net and nodes  # fixtures: pytest finds them here by name


def cell(rng, text, missing=0.01):
    """TEXT, or now and then an empty or non-numeric cell."""
    k = rng.random()
    if k < missing:
        return ""
    if k < missing * 1.5:
        return "NA"
    return text


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory):
    """Each node's CSV of ROWS patients, and all rows parsed back."""
    base = tmp_path_factory.mktemp("hospitals")
    files, rows = {}, {}
    for i, name in enumerate(NODES):
        rng = random.Random(1000 + i)
        path = base / ("%s.csv" % name)
        with open(str(path), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "age", "sex", "ward", "bmi", "chol", "smoker",
                        "sbp", "const"])
            for r in range(ROWS):
                age = rng.randint(1800, 9500) / 100
                sex = rng.randint(0, 1)
                bmi = rng.randint(160, 420) / 10
                chol = rng.randint(120, 320)
                smoker = int(rng.random() < 0.3 + 0.1 * i)
                sbp = (90 + 0.5 * age + 5 * sex + 0.8 * bmi + 0.02 * chol
                       + 3 * smoker + 4 * i + rng.gauss(0, 8))
                ward = rng.choice(WARDS) if rng.random() > 0.02 else "X"
                w.writerow([
                    "%s-%d" % (name, r), cell(rng, "%.2f" % age),
                    cell(rng, str(sex), 0.005), ward,
                    cell(rng, "%.1f" % bmi, 0.005), str(chol),
                    str(smoker), cell(rng, "%.2f" % sbp), "7"])
        files[name] = path
        with open(str(path)) as f:
            rows[name] = list(csv.DictReader(f))
    return files, rows


def num(text):
    """A cell as smc reads it: an exact number, or None."""
    try:
        return Fraction(Decimal(text.strip()))
    except Exception:
        return None


def same_json(results):
    """Every party exited 0 and printed the same one JSON object."""
    outs = {}
    for name, (rc, o, e) in results.items():
        assert rc == 0, "%s exited %d: %s" % (name, rc, e)
        assert o.count("\n") == 1 and o.endswith("\n"), o
        outs[name] = o
    assert len(set(outs.values())) == 1, outs
    return json.loads(next(iter(outs.values())), parse_float=Decimal)


def all_fail(results, *words):
    """Every party exited 2 with WORDS in its error; returns the errors."""
    errs = {}
    for name, (rc, o, e) in results.items():
        assert rc == 2, "%s exited %d: %s %s" % (name, rc, o, e)
        for w in words:
            assert w in e, (name, w, e)
        errs[name] = e
    return errs


def csv_args(files, parties, *extra):
    return {n: ["--csv", files[n], *extra, "--json"] for n in parties}


def close(got, want, rel=1e-6, abs_tol=1e-9):
    return abs(float(got) - float(want)) <= max(rel * abs(float(want)),
                                                abs_tol)


def assert_watcher_saw_both(seen):
    kinds = {rel.split("/")[-1].split(".")[0] for (_, rel) in seen}
    assert {"share", "partial"} <= kinds, sorted(seen)


# --- the primitive: a secure vector sum -------------------------------------

def write_vector(path, rng, n):
    vals = []
    with open(str(path), "w") as f:
        for _ in range(n):
            v = Decimal(rng.randint(-10 ** 9, 10 ** 9)) / 1000
            if rng.random() < 0.1:
                v = Decimal(rng.randint(-10 ** 15, 10 ** 15)) / 1000
            vals.append(v)
            f.write("%s\n" % v)
    return vals


def test_vector_sum_three_parties_private(nodes, tmp_path):
    rng = random.Random(21)
    vecs, per = {}, {}
    for name in THREE:
        path = tmp_path / ("%s.vec" % name)
        vecs[name] = write_vector(path, rng, 10000)
        per[name] = ["--vector", path, "--json"]
    rid = new_round("vec3")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "sum", rid, per, late="carol",
                          watcher=snoop)
    out = same_json(res)
    assert out["round"] == rid and out["parties"] == sorted(THREE)
    want = [sum(col) for col in zip(*vecs.values())]
    assert len(out["sums"]) == 10000
    assert out["sums"] == want
    # No inbox file held an element of any party's vector.
    secrets = {int(v * SCALE) for vs in vecs.values() for v in vs}
    assert_private(snoop.seen, secrets, [])
    assert_watcher_saw_both(snoop.seen)
    assert smc_files(nodes, rid) == {}


def test_vector_sum_five_parties_text(nodes, tmp_path):
    rng = random.Random(22)
    vecs, per = {}, {}
    for name in NODES:
        path = tmp_path / ("%s.vec" % name)
        vecs[name] = write_vector(path, rng, 10000)
        per[name] = ["--vector", path]
    res = run_parties(nodes, "sum", new_round("vec5"), per)
    outs = {n: r[1] for n, r in res.items()}
    assert all(r[0] == 0 for r in res.values()), res
    assert len(set(outs.values())) == 1
    lines = outs["alice"].splitlines()
    want = [sum(col) for col in zip(*vecs.values())]
    assert [Decimal(x) for x in lines] == want


def test_vector_lengths_differ_every_party_says_so(nodes, tmp_path):
    per = {}
    # bob's share is far longer than alice's and carol's files can be:
    # they read its header all the same.
    for name, n in zip(THREE, (10, 1000, 10)):
        path = tmp_path / ("%s.vec" % name)
        path.write_text("".join("%d\n" % i for i in range(n)))
        per[name] = ["--vector", path]
    rid = new_round("veclen")
    errs = all_fail(run_parties(nodes, "sum", rid, per),
                    "vector lengths differ")
    # Each names the others with their lengths.
    assert "bob 1000" in errs["alice"] and "carol 10" in errs["alice"]
    assert "alice 10" in errs["bob"] and "carol 10" in errs["bob"]
    assert "bob 1000" in errs["carol"] and "alice 10" in errs["carol"]


# --- histograms --------------------------------------------------------------

def test_hist_bins_three_parties(nodes, hospitals):
    files, rows = hospitals
    edges = [0, 20, 40, 60, 80, 90]
    rid = new_round("hist")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "hist", rid, csv_args(
            files, THREE, "--column", "age", "--bins",
            ",".join(map(str, edges))),
            late="carol", watcher=snoop)
    out = same_json(res)
    values = [num(r["age"]) for n in THREE for r in rows[n]]
    nums = [v for v in values if v is not None]
    counts, _ = np.histogram([float(v) for v in nums], bins=edges)
    assert [b["count"] for b in out["bins"]] == counts.tolist()
    assert out["bins"][0]["label"] == "[0,20)"
    assert out["bins"][-1]["label"] == "[80,90]"
    assert [(b["lo"], b["hi"]) for b in out["bins"]] == list(
        zip(edges, edges[1:]))
    # Ages above 90, missing or "NA": other.
    assert out["other"] == len(values) - sum(counts.tolist())
    assert out["other"] > 0
    per_party = []
    for n in THREE:
        xs = [float(v) for v in (num(r["age"]) for r in rows[n])
              if v is not None]
        per_party += np.histogram(xs, bins=edges)[0].tolist()
    assert_private(snoop.seen, per_party, [])


def test_hist_categories_five_parties(nodes, hospitals):
    files, rows = hospitals
    res = run_parties(nodes, "hist", new_round("histcat"), csv_args(
        files, NODES, "--column", "ward", "--categories", "C,A,B"))
    out = same_json(res)
    wards = [r["ward"] for n in NODES for r in rows[n]]
    assert out["categories"] == [
        {"category": c, "count": wards.count(c)} for c in ("C", "A", "B")]
    assert out["other"] == wards.count("D") + wards.count("X")


# --- statistics --------------------------------------------------------------

def moments(xs):
    n = len(xs)
    s = sum(xs)
    mean = s / n
    m2 = sum((x - mean) ** 2 for x in xs)
    return n, s, mean, m2


def check_stats(got, xs):
    n, s, mean, m2 = moments(xs)
    assert got["count"] == n
    assert Fraction(got["sum"]) == s
    assert abs(Fraction(got["mean"]) - mean) <= Fraction(1, 2 * SCALE)
    for key, want in (("variance_population", m2 / n),
                      ("variance_sample", m2 / (n - 1))):
        assert close(got[key], want, 1e-9), (key, got[key], float(want))
    assert close(got["sd_population"], math.sqrt(m2 / n), 1e-9)
    assert close(got["sd_sample"], math.sqrt(m2 / (n - 1)), 1e-9)


def test_stats_by_group_three_parties(nodes, hospitals):
    files, rows = hospitals
    rid = new_round("byward")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "stats", rid, csv_args(
            files, THREE, "--column", "sbp", "--by", "ward",
            "--categories", "A,B,C,D"),
            late="carol", watcher=snoop)
    out = same_json(res)
    assert out["column"] == "sbp" and out["by"] == "ward"
    pooled = [r for n in THREE for r in rows[n]]
    for g, got in zip(WARDS, out["groups"]):
        assert got["group"] == g
        cells = [num(r["sbp"]) for r in pooled if r["ward"] == g]
        check_stats(got, [x for x in cells if x is not None])
        assert got["skipped"] == cells.count(None)
    assert out["other"] == sum(r["ward"] == "X" for r in pooled)
    secrets = []
    for n in THREE:
        for g in WARDS:
            xs = [num(r["sbp"]) for r in rows[n] if r["ward"] == g]
            xs = [int(x * SCALE) for x in xs if x is not None]
            secrets += [len(xs), sum(xs), sum(x * x for x in xs)]
    assert_private(snoop.seen, secrets, [])


def test_stats_and_sum_json(nodes, hospitals):
    files, rows = hospitals
    out = same_json(run_parties(nodes, "stats", new_round("sj"), csv_args(
        files, THREE, "--column", "bmi")))
    cells = [num(r["bmi"]) for n in THREE for r in rows[n]]
    check_stats(out, [x for x in cells if x is not None])
    assert out["skipped"] == cells.count(None)
    assert out["column"] == "bmi" and out["parties"] == sorted(THREE)
    out = same_json(run_parties(nodes, "sum", new_round("sumj"), {
        "alice": ["--input", "-1.5", "--json"],
        "bob": ["--input", "2", "--json"],
        "carol": ["--input", "0.000001", "--json"]}))
    assert out["sum"] == Decimal("0.500001")


def test_ttp_sum_json(nodes):
    rid = new_round("ttpj")
    ca = nodes["ca"]
    p = ca.snoop.popen("smc", "ttp-sum", "--mount", ca.mnt, "--round", rid,
                       "--parties", "alice,bob", "--timeout", 30, "--json")
    for name, v in (("alice", "1.25"), ("bob", "-3")):
        folder = nodes[name].mnt / "outbox/ca/smc" / rid
        folder.mkdir(parents=True)
        (folder / "input").write_text(v + "\n")
    o, e = p.communicate(timeout=120)
    assert p.returncode == 0, e
    assert json.loads(o, parse_float=Decimal) == {
        "round": rid, "parties": ["alice", "bob"], "sum": Decimal("-1.75")}


def test_out_of_range_value_ends_round_everywhere(nodes, tmp_path):
    """bob's file has one value beyond 10^9: every party stops, and only
    bob's operator learns which line it was."""
    per = {}
    for name in THREE:
        path = tmp_path / ("%s.csv" % name)
        big = name == "bob"
        path.write_text("x\n1\n%s\n3\n" % ("1000000000.5" if big else "2"))
        per[name] = ["--csv", path, "--column", "x"]
    rid = new_round("range")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "stats", rid, per)
    all_fail(res)
    assert "line 3" in res["bob"][2] and "beyond the bound" in res["bob"][2]
    for name in ("alice", "carol"):
        e = res[name][2]
        assert "bob stopped the round" in e and "out of range" in e, e
        assert "1000000000.5" not in e and "line 3" not in e
    # bob sent no share: only his abort files went out.
    assert not any(rel.startswith("bob/") and not rel.endswith("/abort")
                   for (_, rel) in snoop.seen), sorted(snoop.seen)


# --- regression and correlation ----------------------------------------------

def design(rows, parties, y, xs):
    """numpy arrays of the pooled rows where Y and every X are numbers."""
    X, Y, skipped = [], [], 0
    for n in parties:
        for r in rows[n]:
            vals = [num(r[c]) for c in [y] + xs]
            if any(v is None for v in vals):
                skipped += 1
                continue
            Y.append(float(vals[0]))
            X.append([1.0] + [float(v) for v in vals[1:]])
    return np.array(X), np.array(Y), skipped


def check_regression(out, rows, parties, y, xs):
    X, Y, skipped = design(rows, parties, y, xs)
    n, k = X.shape
    beta, rss, rank, _ = np.linalg.lstsq(X, Y, rcond=None)
    assert rank == k
    resid = Y - X @ beta
    rss = float(resid @ resid)
    sigma2 = rss / (n - k)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    tss = float(((Y - Y.mean()) ** 2).sum())
    assert out["n"] == n and out["skipped"] == skipped
    assert [c["term"] for c in out["coefficients"]] == ["intercept"] + xs
    for c, b, s in zip(out["coefficients"], beta, se):
        assert close(c["estimate"], b), (c, b)
        assert close(c["std_error"], s), (c, s)
    assert close(out["r_squared"], 1 - rss / tss)
    assert close(out["residual_std_error"], math.sqrt(sigma2))
    assert out["df"] == n - k


def test_regress_one_predictor_and_corr(nodes, hospitals):
    files, rows = hospitals
    out = same_json(run_parties(nodes, "regress", new_round("reg1"),
                                csv_args(files, THREE, "--y", "sbp",
                                         "--x", "age")))
    check_regression(out, rows, THREE, "sbp", ["age"])
    out = same_json(run_parties(nodes, "corr", new_round("corr"), csv_args(
        files, THREE, "--columns", "age,sbp")))
    X, Y, skipped = design(rows, THREE, "sbp", ["age"])
    assert out["n"] == len(Y) and out["skipped"] == skipped
    assert close(out["r"], np.corrcoef(X[:, 1], Y)[0, 1])
    assert out["columns"] == ["age", "sbp"]


def test_regress_three_predictors_private(nodes, hospitals):
    files, rows = hospitals
    xs = ["age", "sex", "bmi"]
    rid = new_round("reg3")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "regress", rid, csv_args(
            files, THREE, "--y", "sbp", "--x", ",".join(xs)),
            late="carol", watcher=snoop)
    check_regression(same_json(res), rows, THREE, "sbp", xs)
    # No party's n, sums, X'X, X'y or y'y entry was in any inbox file.
    secrets = []
    for name in THREE:
        used = [[num(r[c]) for c in ["sbp"] + xs] for r in rows[name]]
        used = [[int(v * SCALE) for v in u] for u in used
                if None not in u]
        ys = [u[0] for u in used]
        secrets += [len(used), len(rows[name]) - len(used), sum(ys),
                    sum(y * y for y in ys)]
        for j in range(1, len(xs) + 1):
            secrets += [sum(u[j] for u in used),
                        sum(u[j] * u[0] for u in used)]
            for k in range(j, len(xs) + 1):
                secrets.append(sum(u[j] * u[k] for u in used))
    assert_private(snoop.seen, secrets, [])


def test_regress_five_predictors_five_parties(nodes, hospitals):
    files, rows = hospitals
    xs = ["age", "sex", "bmi", "chol", "smoker"]
    out = same_json(run_parties(nodes, "regress", new_round("reg5"),
                                csv_args(files, NODES, "--y", "sbp",
                                         "--x", ",".join(xs))))
    check_regression(out, rows, NODES, "sbp", xs)


def test_constant_predictor_ends_round_everywhere(nodes, hospitals):
    files, _ = hospitals
    errs = all_fail(run_parties(nodes, "regress", new_round("const"),
                                csv_args(files, THREE, "--y", "sbp", "--x",
                                         "age,const")),
                    "const is constant", "singular", "no result")
    assert len(set(errs.values())) == 1
    for name, (rc, o, e) in run_parties(nodes, "corr", new_round("cconst"),
                                        csv_args(files, THREE, "--columns",
                                                 "const,age")).items():
        assert rc == 2 and "undefined" in e
        assert json.loads(o)["exit"] == 2 and "undefined" in json.loads(
            o)["error"]


# --- quantiles ---------------------------------------------------------------

def lower_quantile(xs, q):
    xs = sorted(xs)
    k = math.ceil(Fraction(q) * len(xs))
    return xs[k - 1]


def check_quantiles(out, rows, parties, column, qs, prec):
    xs = [v for v in (num(r[column]) for n in parties for r in rows[n])
          if v is not None]
    assert out["n"] == len(xs)
    assert [Decimal(str(q["q"])) for q in out["quantiles"]] == [
        Decimal(q) for q in qs]
    for got, q in zip(out["quantiles"], qs):
        want = lower_quantile(xs, q)
        value = Fraction(got["value"])
        # At least q*n values are <= the answer, within the precision.
        assert want <= value <= want + Fraction(prec), (q, value, want)


def test_quantiles_three_parties(nodes, hospitals):
    files, rows = hospitals
    rid = new_round("quant3")
    with InboxSnooper(nodes, rid) as snoop:
        res = run_parties(nodes, "quantile", rid, csv_args(
            files, THREE, "--column", "age", "--q", "0.5,0.9",
            "--range", "0:130", "--precision", "0.01"),
            late="carol", watcher=snoop)
    out = same_json(res)
    check_quantiles(out, rows, THREE, "age", ["0.5", "0.9"], "0.01")
    # 130 / 0.01 = 13000 < 2^14: at most 14 halvings, the first of them
    # in the round that counts the values.
    assert out["rounds"] in (13, 14) and out["precision"] == Decimal("0.01")
    # Every step was its own round of shares and partial sums (the
    # watcher polls, so it may miss a file or two that was used at once).
    steps = {rel.split("/")[-1].partition(".")[2] or "0"
             for (_, rel) in snoop.seen}
    assert len(steps) >= out["rounds"] - 2, steps
    assert smc_files(nodes, rid) == {}
    secrets = []
    for n in THREE:
        xs = [v for v in (num(r["age"]) for r in rows[n]) if v is not None]
        secrets.append(len(xs))
    assert_private(snoop.seen, secrets, [])


def test_quantiles_five_parties_default_precision(nodes, hospitals):
    files, rows = hospitals
    out = same_json(run_parties(nodes, "quantile", new_round("quant5"),
                                csv_args(files, NODES, "--column", "bmi",
                                         "--q", "0.5,0.9", "--range",
                                         "10:50")))
    # A thousandth of the range.
    assert out["precision"] == Decimal("0.04") and out["rounds"] <= 10
    check_quantiles(out, rows, NODES, "bmi", ["0.5", "0.9"], "0.04")


def test_quantile_value_outside_range_ends_round(nodes, hospitals):
    files, _ = hospitals
    res = run_parties(nodes, "quantile", new_round("qrange"), csv_args(
        files, THREE, "--column", "age", "--q", "0.5", "--range", "20:90"))
    errs = all_fail(res, "outside --range")
    for name in THREE:
        assert "stopped the round" in errs[name] or "line" in errs[name]


# --- agreement and usage -----------------------------------------------------

def test_different_bins_refused(nodes, hospitals):
    files, _ = hospitals
    per = {"alice": ["--csv", files["alice"], "--column", "age", "--bins",
                     "0,50,100"],
           "bob": ["--csv", files["bob"], "--column", "age", "--bins",
                   "0,50,101"]}
    res = run_parties(nodes, "hist", new_round("bins"), per)
    errs = all_fail(res, "other options", "no result")
    assert "from bob" in errs["alice"] and "from alice" in errs["bob"]


@pytest.mark.parametrize("cmd,args,words", [
    ("hist", ["--csv", "f", "--column", "a", "--bins", "0,10,5"],
     "increase strictly"),
    ("hist", ["--csv", "f", "--column", "a"], "--bins or --categories"),
    ("hist", ["--csv", "f", "--column", "a", "--bins", "0,1",
              "--categories", "A"], "--bins or --categories"),
    ("stats", ["--csv", "f", "--column", "a", "--by", "w"],
     "--by and --categories"),
    ("stats", ["--csv", "f", "--column", "a", "--bins", "1,2"],
     "--bins goes with hist"),
    ("regress", ["--csv", "f", "--y", "a", "--x", "b,a"], "also one of --x"),
    ("regress", ["--csv", "f", "--y", "a", "--x", "b,b"], "named twice"),
    ("corr", ["--csv", "f", "--columns", "a"], "want 2 to 2 columns"),
    ("quantile", ["--csv", "f", "--column", "a", "--q", "0", "--range",
                  "0:1"], "(0, 1]"),
    ("quantile", ["--csv", "f", "--column", "a", "--q", "0.5", "--range",
                  "5:1"], "LO < HI"),
    ("quantile", ["--csv", "f", "--column", "a", "--q", "0.5", "--range",
                  "0:1", "--precision", "0"], "--precision"),
    ("sum", ["--input", "1", "--vector", "f"], "one of them"),
])
def test_usage_errors(nodes, cmd, args, words):
    alice = nodes["alice"]
    r = alice.snoop.run("smc", cmd, "--mount", alice.mnt, "--round",
                        new_round("usage"), "--parties", "alice,bob,carol",
                        *args, "--json")
    assert r.returncode == 1, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    err = json.loads(r.stdout)
    assert err["exit"] == 1 and words in err["error"]
