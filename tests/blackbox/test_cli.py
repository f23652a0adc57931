"""The command line: help, version, usage errors, inspect and ca-init.

Nothing here mounts, so these tests run without FUSE.
"""

import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import snoopwire
from snoopnodes import FP_RE, file_mode, free_port, serial_int, summary_fields

COMMANDS = ["ca-init", "mount", "status", "inspect"]
VERSION_RE = re.compile(r"\d+\.\d+\.\d+")


def ca_init(snoop, state, name="ca", *extra):
    return snoop.run("ca-init", state, "--name", name,
                     "--listen", "127.0.0.1:%d" % free_port(), *extra)


def one_line(text):
    return len(text.strip().splitlines()) == 1


# --- help and version --------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"]] + [[c, "--help"] for c in COMMANDS],
                         ids=lambda a: " ".join(a))
def test_help(snoop, args):
    r = snoop.run(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "help must go to stdout"
    assert "usage" in r.stdout.lower()
    if len(args) == 2:
        assert args[0] in r.stdout
    else:
        for c in COMMANDS:
            assert c in r.stdout, "top-level help does not mention %s" % c


@pytest.mark.parametrize("args", [["--version"]] + [[c, "--version"] for c in COMMANDS],
                         ids=lambda a: " ".join(a))
def test_version(snoop, args):
    r = snoop.run(*args)
    assert r.returncode == 0, r.stderr
    assert VERSION_RE.search(r.stdout), r.stdout


# --- usage errors -------------------------------------------------------------

def test_no_arguments(snoop):
    r = snoop.run()
    assert r.returncode == 1
    assert "usage" in r.stderr.lower()


def test_unknown_command(snoop):
    r = snoop.run("frobnicate")
    assert r.returncode == 1
    assert "usage" in r.stderr.lower()
    assert r.stdout == ""


@pytest.mark.parametrize("cmd", COMMANDS)
def test_unknown_option(snoop, tmp_path, cmd):
    target = tmp_path / "x"
    r = snoop.run(cmd, target, "--no-such-option")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "usage" in r.stderr.lower() or "--no-such-option" in r.stderr
    assert not target.exists(), "a usage error must not create anything"


@pytest.mark.parametrize("args", [
    ["ca-init"],
    ["ca-init", "{state}"],                                   # no --name/--listen
    ["ca-init", "{state}", "--name", "ca"],                   # no --listen
    ["ca-init", "{state}", "--listen", "127.0.0.1:1"],        # no --name
    ["ca-init", "{state}", "--name", "ca", "--listen"],       # missing value
    ["ca-init", "{state}", "--name", "ca", "--listen", "127.0.0.1:1", "extra"],
    ["mount"],
    ["mount", "{mnt}"],                                       # no --state
    ["status"],
    ["inspect"],
    ["inspect", "a.pem", "b.pem"],
], ids=lambda a: " ".join(a))
def test_missing_or_extra_arguments(snoop, tmp_path, args):
    (tmp_path / "mnt").mkdir()
    argv = [a.format(state=tmp_path / "state", mnt=tmp_path / "mnt") for a in args]
    r = snoop.run(*argv)
    assert r.returncode == 1, (argv, r.stdout, r.stderr)
    assert r.stderr.strip()
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "x" * 65, "", ".hidden", "root",
                                  "crl", "a,b", "sp ace"])
def test_ca_init_refuses_bad_names(snoop, tmp_path, name):
    state = tmp_path / "state"
    r = ca_init(snoop, state, name)
    assert r.returncode in (1, 2), r.stdout
    assert r.stderr.strip() and one_line(r.stderr), r.stderr
    assert not state.exists() or not any(state.iterdir())


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1", "127.0.0.1:", ":80",
                                    "127.0.0.1:99999", "127.0.0.1:-1"])
def test_ca_init_refuses_bad_listen(snoop, tmp_path, listen):
    state = tmp_path / "state"
    r = snoop.run("ca-init", state, "--name", "ca", "--listen", listen)
    assert r.returncode in (1, 2), r.stdout
    assert r.stderr.strip()
    assert not state.exists() or not any(state.iterdir())


# --- inspect ------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"hello, not a certificate\n", b"",
                                     b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                     b"-----END CERTIFICATE-----\n",
                                     bytes(range(256))],
                         ids=["text", "empty", "bad-pem", "binary"])
def test_inspect_non_certificate(snoop, tmp_path, content):
    f = tmp_path / "junk.pem"
    f.write_bytes(content)
    r = snoop.run("inspect", f)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip() and one_line(r.stderr), r.stderr


def test_inspect_missing_file(snoop, tmp_path):
    r = snoop.run("inspect", tmp_path / "nope.pem")
    assert r.returncode == 2
    assert one_line(r.stderr), r.stderr


def test_inspect_root(snoop, tmp_path):
    state = tmp_path / "state"
    r = ca_init(snoop, state, "ca")
    assert r.returncode == 0, r.stderr
    fp = r.stdout.strip()
    i = snoop.run("inspect", state / "root.pem")
    assert i.returncode == 0, i.stderr
    f = summary_fields(i.stdout)
    root = snoopwire.load_cert((state / "root.pem").read_bytes())
    assert f["SHA-256"] == fp
    assert f["CA"] == "yes"
    assert serial_int(f["Serial"]) == root.serial_number
    assert re.match(r"RSA 2048 bits", f["Key"])
    for k in ("Subject", "Issuer", "Not before", "Not after"):
        assert f.get(k), "inspect lacks %s:\n%s" % (k, i.stdout)
    assert "left" in f["Not after"]


def test_inspect_node_cert_of_ca(snoop, tmp_path):
    state = tmp_path / "state"
    port = free_port()
    r = snoop.run("ca-init", state, "--name", "hub-1", "--listen",
                  "127.0.0.1:%d" % port)
    assert r.returncode == 0, r.stderr
    i = snoop.run("inspect", state / "node.pem")
    assert i.returncode == 0, i.stderr
    f = summary_fields(i.stdout)
    assert re.search(r"\bCN=hub-1\b", f["Subject"]), f["Subject"]
    assert f["CA"] == "no"
    assert f["Address"] == "snoop://127.0.0.1:%d" % port
    assert f["Key"].startswith("RSA 2048 bits")


# --- ca-init --------------------------------------------------------------------

def load_key(path):
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def test_ca_init_creates_state(snoop, tmp_path):
    state = tmp_path / "state"
    r = ca_init(snoop, state, "ca")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout), repr(r.stdout)
    assert FP_RE.match(r.stdout.strip())

    assert file_mode(state) == 0o700
    for name in ("root.key", "node.key"):
        assert file_mode(state / name) == 0o600, name
    for name in ("root.pem", "node.pem", "registry.db"):
        assert (state / name).is_file(), name
    # For the CRL; the certificates are in registry.db, not cached as files.
    assert (state / "certs").is_dir()
    assert [p.name for p in (state / "certs").iterdir()] in ([], ["crl.pem"])

    root = snoopwire.load_cert((state / "root.pem").read_bytes())
    der = root.public_bytes(serialization.Encoding.DER)
    assert r.stdout.strip() == "sha256:" + hashlib.sha256(der).hexdigest()
    assert root.issuer == root.subject
    assert snoopwire.issued_by(root, root)
    assert snoopwire.spki(load_key(state / "root.key")) == snoopwire.spki(root)

    node = snoopwire.load_cert((state / "node.pem").read_bytes())
    assert snoopwire.cert_cn(node) == "ca"
    assert snoopwire.issued_by(node, root)
    assert snoopwire.spki(load_key(state / "node.key")) == snoopwire.spki(node)
    assert snoopwire.spki(node) != snoopwire.spki(root), (
        "the root key must be used only for signing certificates")


def test_ca_init_into_empty_dir(snoop, tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    r = ca_init(snoop, state)
    assert r.returncode == 0, r.stderr
    assert FP_RE.match(r.stdout.strip())
    assert file_mode(state / "root.key") == 0o600


def test_ca_init_refuses_non_empty_dir(snoop, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "precious").write_text("keep me\n")
    r = ca_init(snoop, state)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert one_line(r.stderr), r.stderr
    assert sorted(p.name for p in state.iterdir()) == ["precious"]
    assert (state / "precious").read_text() == "keep me\n"


def test_ca_init_twice_keeps_first_root(snoop, tmp_path):
    state = tmp_path / "state"
    first = ca_init(snoop, state)
    assert first.returncode == 0, first.stderr
    before = (state / "root.pem").read_bytes(), (state / "root.key").read_bytes()
    again = ca_init(snoop, state)
    assert again.returncode == 2
    assert one_line(again.stderr), again.stderr
    assert ((state / "root.pem").read_bytes(), (state / "root.key").read_bytes()) == before


def test_ca_init_options(snoop, tmp_path):
    state = tmp_path / "state"
    r = ca_init(snoop, state, "ca", "--key-bits", "3072", "--days", "30")
    assert r.returncode == 0, r.stderr
    root = snoopwire.load_cert((state / "root.pem").read_bytes())
    assert root.public_key().key_size == 3072


@pytest.mark.parametrize("bits", ["512", "abc", "0", "-2048"])
def test_ca_init_refuses_bad_key_bits(snoop, tmp_path, bits):
    state = tmp_path / "state"
    r = ca_init(snoop, state, "ca", "--key-bits", bits)
    assert r.returncode in (1, 2), r.stdout
    assert r.stderr.strip()
    assert not state.exists() or not any(state.iterdir())


def test_status_of_unmounted_dir(snoop, tmp_path):
    r = snoop.run("status", tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert one_line(r.stderr), r.stderr


def test_serials_are_valid(snoop, tmp_path):
    state = tmp_path / "state"
    assert ca_init(snoop, state).returncode == 0
    for name in ("root.pem", "node.pem"):
        c = snoopwire.load_cert((state / name).read_bytes())
        assert 0 < c.serial_number < 2 ** 159, "serial must be positive, <= 20 octets"
        assert c.version == x509.Version.v3
