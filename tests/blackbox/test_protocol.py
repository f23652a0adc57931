"""The wire protocol, spoken raw against a mounted CA and node.

Every refused request must yield an error reply or a dropped connection and
never a certificate, and the CA must go on serving: each refusal test ends
with a valid enrollment.
"""

import base64
import datetime
import json
import os
import socket
import ssl
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

import snoopwire as w
from snoopnodes import (build_ca_and_alice, dead_addr, module_cluster,
                        wait_until)

_counter = [0]


def fresh_name(prefix="n"):
    _counter[0] += 1
    return "%s-%d" % (prefix, _counter[0])


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "proto",
                              build_ca_and_alice)


@pytest.fixture(scope="module")
def ca(net):
    return net.ca


class Client:
    """A node that exists only on the wire: a name, a key and a certificate."""

    def __init__(self, name, key, cert, address):
        self.name, self.key, self.cert, self.address = name, key, cert, address

    @property
    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def check_enrolled(net, res, name, key, address):
    """Every promise of a successful get/csr reply."""
    assert res.reply is not None, "CA dropped a valid enrollment"
    assert res.ok, "valid enrollment refused: %r" % (res.reply.extra,)
    reply = res.reply
    assert reply.id == net.ca.name
    assert reply.payload_type == "text"
    assert w.fingerprint(res.root) == net.fingerprint
    assert res.ca_cert == net.ca.cert(net.ca.name)
    assert w.issued_by(res.ca_cert, res.root)
    assert reply.verify_with(res.ca_cert), "reply signature does not verify"
    cert = res.cert
    assert w.cert_cn(cert) == name
    assert w.spki(cert) == w.spki(key)
    assert w.issued_by(cert, res.root)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "snoop://" + address]
    return cert


def enroll_ok(net, name=None, key=None):
    name = name or fresh_name()
    key = key or w.new_key()
    address = dead_addr()
    res = w.enroll(net.ca.addr, name, key, address, token=net.token(name))
    cert = check_enrolled(net, res, name, key, address)
    return Client(name, key, cert, address)


def assert_ca_serves(net):
    """A valid enrollment right now works, and the CA's tree shows it."""
    c = enroll_ok(net)
    assert wait_until(lambda: c.name in net.ca.cert_names(), 5), (
        "%s enrolled but not in the CA's certs/" % c.name)
    return c


@pytest.fixture(scope="module")
def client(net):
    return enroll_ok(net, "raw-client")


def assert_error_or_drop(reply, request=None):
    """REPLY is None (dropped) or an error reply (to REQUEST, if given)."""
    if reply is None:
        return
    reply.check_shape()
    assert reply.method == "reply"
    assert reply.status == "error", "expected a refusal, got %r" % (reply,)
    assert isinstance(reply.extra.get("error"), str) and reply.extra["error"]
    assert reply.message["payload"] is None
    if request is not None and "re" in reply.extra:
        assert reply.extra["re"] == request.message_id


def assert_signed_by_ca(net, reply):
    if reply is not None and reply.is_signed():
        assert reply.verify_with(net.ca.cert(net.ca.name)), (
            "a signed reply must verify with the CA node's certificate")


def cert_known_at_ca(net, client, name):
    _, reply = w.get_crt(net.ca.addr, name, client.name, client.key)
    return reply is not None and reply.status == "ok"


def no_file_named(base, filename):
    """True if no file FILENAME exists under BASE (mount points not entered)."""
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.endswith("-mnt")]
        if filename in files:
            return False
    return True


# --- get/csr refusals ---------------------------------------------------------------

def refused_unsigned(name, key, other):
    return dict(unsigned=True)


def refused_forged(name, key, other):
    return dict(sign_key=other)


def refused_broken_csr(name, key, other):
    return dict(csr_pem=w.corrupt_csr_signature(w.make_csr(key, name)))


def refused_id_not_cn(name, key, other):
    return dict(node_id=name + "-other")


def refused_not_a_csr(name, key, other):
    return dict(csr_pem="hello, I am not a CSR\n")


def refused_cert_not_csr(name, key, other):
    # A certificate where a CSR belongs (self-signed, CN=name).
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return dict(csr_pem=cert.public_bytes(serialization.Encoding.PEM).decode())


REFUSALS = [refused_unsigned, refused_forged, refused_broken_csr,
            refused_id_not_cn, refused_not_a_csr, refused_cert_not_csr]


@pytest.mark.parametrize("variant", REFUSALS, ids=lambda f: f.__name__[8:])
def test_csr_refused(net, client, variant):
    name = fresh_name("refused")
    key, other = w.new_key(), w.new_key()
    res = w.enroll(net.ca.addr, name, key, dead_addr(), **variant(name, key, other))
    assert_error_or_drop(res.reply, res.request)
    assert_signed_by_ca(net, res.reply)
    assert res.cert is None
    assert not cert_known_at_ca(net, client, name)
    assert not cert_known_at_ca(net, client, name + "-other")
    assert name not in net.ca.cert_names()
    assert_ca_serves(net)


@pytest.mark.parametrize("bad", ["../x", "a/b", "x" * 65, "", "root", "crl",
                                 ".hidden", "a,b", "sp ace", "x\ny", "caf\u00e9"],
                         ids=["dotdot", "slash", "65chars", "empty", "root",
                              "crl", "leading-dot", "comma", "space", "newline",
                              "non-ascii"])
def test_csr_bad_name_refused(net, client, bad):
    before = net.ca.cert_names()
    key = w.new_key()
    res = w.enroll(net.ca.addr, bad, key, dead_addr())
    assert_error_or_drop(res.reply, res.request)
    assert res.cert is None
    assert net.ca.cert_names() == before
    if bad:
        assert not cert_known_at_ca(net, client, bad)
    # Nothing named after the request appeared anywhere on disk.
    leaf = bad.replace("/", "_").split("_")[-1] or "x"
    if leaf not in ("root", "crl"):
        assert no_file_named(net.base.parent, leaf + ".pem")
    assert_ca_serves(net)


def test_taken_name_with_other_key_refused(net, client):
    alice_cert = net.ca.cert("alice")
    # With valid tokens, so that the name rule is what refuses.
    res = w.enroll(net.ca.addr, "alice", w.new_key(), dead_addr(),
                   token=net.token("alice"))
    assert_error_or_drop(res.reply, res.request)
    assert res.cert is None
    _, reply = w.get_crt(net.ca.addr, "alice", client.name, client.key)
    assert reply is not None and reply.status == "ok"
    assert w.spki(w.load_cert(reply.payload)) == w.spki(alice_cert)
    assert net.ca.cert("alice") == alice_cert
    assert net.nodes["alice"].cert("alice") == alice_cert
    # The same for a name taken by a raw client, and for the CA's own name.
    res = w.enroll(net.ca.addr, client.name, w.new_key(), dead_addr(),
                   token=net.token(client.name))
    assert_error_or_drop(res.reply, res.request)
    res = w.enroll(net.ca.addr, net.ca.name, w.new_key(), dead_addr(),
                   token=net.token(net.ca.name))
    assert_error_or_drop(res.reply, res.request)
    assert net.ca.cert(net.ca.name) == w.load_cert(
        (net.ca.state / "node.pem").read_bytes())
    assert_ca_serves(net)


def test_reenroll_same_key(net):
    first = enroll_ok(net)
    res = w.enroll(net.ca.addr, first.name, first.key, first.address,
                   token=net.token(first.name))
    cert = check_enrolled(net, res, first.name, first.key, first.address)
    assert w.spki(cert) == w.spki(first.cert)


# --- frames -------------------------------------------------------------------------

def expect_refusal(sock, must_close, timeout=10):
    """The peer drops the connection or answers with an error reply.

    With MUST_CLOSE the connection has to end even after an error reply
    (after an oversized frame the byte stream cannot be trusted any more).
    """
    sock.settimeout(timeout)
    try:
        body = w.recv_frame(sock)
    except (w.Dropped, w.WireError):
        return
    except socket.timeout:
        pytest.fail("the connection was neither answered nor dropped in %d s" % timeout)
    assert_error_or_drop(w.parse(body))
    if must_close:
        try:
            w.recv_frame(sock)
        except w.Dropped:
            return
        except socket.timeout:
            pytest.fail("the connection stayed open after an oversized frame")
        pytest.fail("a second frame after the refusal")


@pytest.mark.parametrize("length", [w.FRAME_MAX + 1, 16 * 1024 * 1024, 0xFFFFFFFF])
def test_oversized_frame_dropped(net, length):
    with w.connect(net.ca.addr) as s:
        s.sendall(struct.pack(">I", length))
        expect_refusal(s, must_close=True)
    assert_ca_serves(net)


def test_oversized_frame_with_body_dropped(net):
    with w.connect(net.ca.addr) as s:
        s.sendall(struct.pack(">I", w.FRAME_MAX + 1))
        try:
            s.sendall(b"{" + b" " * w.FRAME_MAX)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        else:
            expect_refusal(s, must_close=True)
    assert_ca_serves(net)


def test_truncated_frame_then_close(net):
    with w.connect(net.ca.addr) as s:
        s.sendall(struct.pack(">I", 1000) + b'{"message":')
    assert_ca_serves(net)


def test_many_messages_then_valid(net, client):
    """Garbage on one connection does not disturb others."""
    socks = [w.connect(net.ca.addr) for _ in range(20)]
    try:
        for s in socks:
            s.sendall(struct.pack(">I", 50) + b"x" * 10)
        assert_ca_serves(net)
    finally:
        for s in socks:
            s.close()


# --- malformed messages -------------------------------------------------------------

def meta(**over):
    m = {"method": "get/crt", "args": "", "id": "raw-client",
         "message_id": w.new_message_id(), "timestamp": w.timestamp_now(),
         "payload_type": "none", "extra": {}}
    m.update(over)
    return m


def raw(message_obj):
    return json.dumps(message_obj, separators=(",", ":")).encode()


def signed_frame(client, mbytes):
    return w.frame_body(mbytes, w.sign(client.key, mbytes))


def signature_first(client):
    """A correctly signed message in the frame layout with the keys swapped."""
    m = raw({"meta": meta(), "payload": None})
    sig = base64.b64encode(w.sign(client.key, m))
    return b'{"signature":"' + sig + b'","message":' + m + b"}"


GARBAGE = {
    "empty": lambda c: b"",
    "text": lambda c: b"not json at all",
    "open-brace": lambda c: b"{",
    "array": lambda c: b"[]",
    "null": lambda c: b"null",
    "nul-bytes": lambda c: b"\x00" * 64,
    "invalid-utf8": lambda c: b'{"message":{"meta":"\xff\xfe"},"signature":""}',
    "empty-message": lambda c: b'{"message":{},"signature":""}',
    "deep-nesting": lambda c: (b'{"message":' + b"[" * 100000 + b"]" * 100000
                               + b',"signature":""}'),
    "deep-extra": lambda c: signed_frame(c, raw({"meta": meta(extra={"a": {"b": {
        "c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}), "payload": None})),
    "signature-not-base64": lambda c: w.frame_body(raw({"meta": meta(),
                                                        "payload": None}))[:-2]
    + b'!!!!"}',
    "signature-first": lambda c: signature_first(c),
    "meta-missing-field": lambda c: signed_frame(c, raw({"meta": {
        k: v for k, v in meta().items() if k != "message_id"}, "payload": None})),
    "message-id-2^53": lambda c: signed_frame(c, raw({"meta": meta(
        message_id=2 ** 53), "payload": None})),
    "message-id-negative": lambda c: signed_frame(c, raw({"meta": meta(
        message_id=-1), "payload": None})),
    "message-id-string": lambda c: signed_frame(c, raw({"meta": meta(
        message_id="7"), "payload": None})),
    "message-id-float": lambda c: signed_frame(c, raw({"meta": meta(
        message_id=1.5), "payload": None})),
    "method-not-string": lambda c: signed_frame(c, raw({"meta": meta(
        method=42), "payload": None})),
    "method-too-long": lambda c: signed_frame(c, raw({"meta": meta(
        method="get/" + "x" * 5000), "payload": None})),
    "args-too-long": lambda c: signed_frame(c, raw({"meta": meta(
        args="x" * 100000), "payload": None})),
    "id-too-long": lambda c: signed_frame(c, raw({"meta": meta(
        id="x" * 5000), "payload": None})),
    "payload-type-unknown": lambda c: signed_frame(c, raw({"meta": meta(
        payload_type="pickle"), "payload": None})),
    "payload-type-mismatch": lambda c: signed_frame(c, raw({"meta": meta(
        payload_type="text"), "payload": None})),
    "bytes-not-base64": lambda c: signed_frame(c, raw({"meta": meta(
        payload_type="bytes"), "payload": "%%%not base64%%%"})),
    "extra-not-object": lambda c: signed_frame(c, raw({"meta": meta(
        extra=[1, 2]), "payload": None})),
    "trailing-garbage": lambda c: signed_frame(c, raw({"meta": meta(),
                                                       "payload": None})) + b"xyz",
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_garbage_refused(net, client, case):
    body = GARBAGE[case](client)
    assert len(body) <= w.FRAME_MAX, "test bug: frame too large"
    with w.connect(net.ca.addr) as s:
        try:
            w.send_frame(s, body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            expect_refusal(s, must_close=False)
    assert_ca_serves(net)


# --- get/crt ------------------------------------------------------------------------

def test_get_crt_own(net, client):
    req, reply = w.get_crt(net.ca.addr, "", client.name, client.key)
    assert reply is not None and reply.status == "ok", reply
    assert reply.payload_type == "text"
    cert = w.load_cert(reply.payload)
    assert cert == net.ca.cert(net.ca.name)
    assert reply.verify_with(cert)
    assert reply.id == net.ca.name


def test_get_crt_by_name(net, client):
    _, reply = w.get_crt(net.ca.addr, "alice", client.name, client.key)
    assert reply is not None and reply.status == "ok", reply
    assert w.load_cert(reply.payload) == net.ca.cert("alice")
    assert reply.verify_with(net.ca.cert(net.ca.name))


def test_get_crt_unknown_name(net, client):
    req, reply = w.get_crt(net.ca.addr, "nobody-by-this-name", client.name, client.key)
    assert reply is not None, "an unknown name deserves an error reply"
    assert_error_or_drop(reply, req)
    assert_signed_by_ca(net, reply)


def test_get_crt_all(net, client):
    known = net.ca.cert_names()
    certs, replies = w.get_all_certs(net.ca.addr, client.name, client.key)
    for reply in replies:
        assert reply.payload_type == "text"
        assert reply.verify_with(net.ca.cert(net.ca.name))
    root = net.ca.root()
    nodes = {}
    for c in certs:
        if c == root:
            continue
        assert w.issued_by(c, root), w.cert_cn(c)
        assert w.cert_cn(c) not in nodes, "%s listed twice" % w.cert_cn(c)
        nodes[w.cert_cn(c)] = c
    assert known <= set(nodes), sorted(known - set(nodes))
    assert {"ca", "alice", client.name} <= set(nodes)
    for name in ("ca", "alice"):
        assert nodes[name] == net.ca.cert(name)


def test_get_crt_all_since(net, client):
    """get/crt "*" with extra "since" lists only what the CA recorded after
    that sequence number, and every page gives the CA's newest record before
    it listed ("seq"), which a node's next refresh asks from instead of
    fetching the whole directory again."""
    _, first = w.get_crt(net.ca.addr, "*", client.name, client.key,
                         extra={"since": 0})
    assert first is not None and first.status == "ok", first
    seq = first.extra.get("seq")
    assert isinstance(seq, int) and seq > 0, first.extra
    assert "alice" in {w.cert_cn(c) for c in w.split_pem_bundle(first.payload)}

    _, none = w.get_crt(net.ca.addr, "*", client.name, client.key,
                        extra={"since": seq})
    assert none is not None and none.status == "ok", none
    assert not w.split_pem_bundle(none.payload or "") and not none.extra.get("more")
    assert none.extra.get("seq") == seq, none.extra
    assert none.verify_with(net.ca.cert(net.ca.name))

    late = enroll_ok(net)
    _, new = w.get_crt(net.ca.addr, "*", client.name, client.key,
                       extra={"since": seq})
    assert new is not None and new.status == "ok", new
    assert [w.cert_cn(c) for c in w.split_pem_bundle(new.payload)] == [late.name]
    assert w.split_pem_bundle(new.payload)[0] == late.cert
    assert new.extra.get("seq") > seq, new.extra


def test_get_crt_unsigned_refused(net, client):
    req = w.build("get/crt", "alice", client.name)
    reply = w.exchange(net.ca.addr, req)
    assert_error_or_drop(reply, req)


def test_get_crt_forged_refused(net, client):
    req = w.build("get/crt", "alice", client.name, key=w.new_key())
    reply = w.exchange(net.ca.addr, req)
    assert_error_or_drop(reply, req)


def test_unknown_method(net, client):
    req = w.build("get/frobnicate", "", client.name, key=client.key)
    reply = w.exchange(net.ca.addr, req)
    assert reply is not None, "an unknown method deserves an error reply"
    assert_error_or_drop(reply, req)
    assert_signed_by_ca(net, reply)


# --- post/crt -----------------------------------------------------------------------

def post_crt(addr, name, key, cert_pem):
    """Posts a certificate; returns the reply (None if none came or dropped).

    Over TLS as NAME if snoopwire has NAME's identity, else anonymously
    (which only enrollment may use: such a post is refused)."""
    req = w.build("post/crt", "", name, payload=cert_pem, key=key)
    try:
        s = w.connect(addr, timeout=5, as_node=w.identity(name))
    except w.TLSRefused:
        return None
    with s:
        try:
            w.send_frame(s, req.body)
            return w.parse(w.recv_frame(s))
        except (w.Dropped, socket.timeout, BrokenPipeError, ConnectionResetError):
            return None


def foreign_cert(name, key, address):
    """A certificate for NAME that looks right but comes from another root."""
    now = datetime.datetime.now(datetime.timezone.utc)
    rkey = w.new_key()
    rname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(rname).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("snoop://" + address)]), False)
            .sign(rkey, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_post_crt_kept_by_node(net):
    alice = net.nodes["alice"]
    c = enroll_ok(net)
    post_crt(alice.addr, c.name, c.key, c.pem)
    assert wait_until(lambda: c.name in alice.cert_names(), 10), (
        "alice did not keep a certificate the root vouches for")
    assert alice.cert(c.name) == c.cert


@pytest.mark.parametrize("target", ["ca", "alice"])
def test_post_crt_foreign_refused(net, target):
    node = net.nodes[target]
    key = w.new_key()
    addr = dead_addr()
    before = {n: node.cert(n) for n in ("ca", "alice")}
    post_crt(node.addr, "mallory", key, foreign_cert("mallory", key, addr))
    # Impersonation: a foreign certificate under a real name.
    post_crt(node.addr, "alice", key, foreign_cert("alice", key, addr))
    assert not wait_until(lambda: "mallory" in node.cert_names(), 3)
    assert {n: node.cert(n) for n in ("ca", "alice")} == before
    assert_ca_serves(net)
