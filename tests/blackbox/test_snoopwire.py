"""Self-tests of snoopwire, the tests' own protocol client.

These need no snoopfs binary: they check the client against the wire format
and against a tiny CA written here in Python, so that a failure in the
black-box tests points at snoopfs and not at the client.
"""

import datetime
import json
import re
import socket
import struct
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import snoopwire as w

NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


@pytest.fixture(scope="module")
def key():
    return w.new_key()


@pytest.fixture(scope="module")
def other_key():
    return w.new_key()


def test_message_layout_and_signature(key):
    req = w.build("get/crt", "", "alice", key=key, extra={"n": 1, "s": "x"})
    body = req.body
    assert body.startswith(b'{"message":{"meta":{"method":"get/crt","args":""')
    assert body.endswith(b'"}')
    m = w.parse(body)
    m.check_shape()
    assert m.signed == req.message_bytes
    assert m.verify_with(key.public_key())
    assert m.extra == {"n": 1, "s": "x"}
    assert m.payload is None and m.payload_type == "none"
    assert list(json.loads(body)) == ["message", "signature"]
    assert b" " not in req.message_bytes


def test_signature_covers_exact_bytes(key, other_key):
    req = w.build("post/crt", "", "alice", payload="hello", key=key)
    m = w.parse(req.body)
    assert m.payload == "hello" and m.payload_type == "text"
    tampered = w.parse(req.body.replace(b'"hello"', b'"hellO"'))
    assert not tampered.verify_with(key.public_key())
    assert not m.verify_with(other_key.public_key())
    unsigned = w.parse(w.build("get/crt", "", "alice").body)
    assert not unsigned.is_signed() and not unsigned.verify_with(key.public_key())


def test_bytes_payload_roundtrip(key):
    data = bytes(range(256)) * 3
    m = w.parse(w.build("post/blob", "x", "alice", payload=data, key=key).body)
    assert m.payload_type == "bytes" and m.payload == data


def test_timestamp_and_message_id():
    assert w.TIMESTAMP_RE.match(w.timestamp_now())
    for _ in range(100):
        assert 0 <= w.new_message_id() < 2 ** 53


def test_parse_rejects_other_layouts(key):
    good = w.build("get/crt", "", "alice", key=key)
    with pytest.raises(w.WireError):
        w.parse(b'{"signature":"","message":' + good.message_bytes + b"}")
    with pytest.raises(w.WireError):
        w.parse(b"garbage")
    with pytest.raises(w.WireError):
        w.parse(w.frame_body(b'{"payload":null,"meta":{}}'))


def test_frames_over_socketpair(key):
    a, b = socket.socketpair()
    with a, b:
        req = w.build("get/crt", "", "alice", key=key)
        w.send_frame(a, req.body)
        assert w.recv_frame(b) == req.body
        a.sendall(w.frame_header(w.FRAME_MAX + 1))
        with pytest.raises(w.WireError):
            w.recv_frame(b)
        a.close()
        with pytest.raises(w.Dropped):
            w.recv_frame(b)


def test_csr_helpers(key):
    pem = w.make_csr(key, "alice")
    csr = x509.load_pem_x509_csr(pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    bad = x509.load_pem_x509_csr(w.corrupt_csr_signature(pem).encode())
    assert not bad.is_signature_valid
    assert w.spki(bad) == w.spki(key)


# --- a tiny CA in Python, to run the client end to end ----------------------

class FakeCA:
    """Speaks the CA side of get/csr and get/crt as the brief describes it."""

    def __init__(self, name="ca"):
        self.name = name
        self.root_key = w.new_key()
        self.node_key = w.new_key()
        self.root = self._make(self.root_key.public_key(), "snoop root", True, None)
        self.ca_cert = self._make(self.node_key.public_key(), name, False,
                                  "127.0.0.1:1")
        self.certs = {name: self.ca_cert}
        # The CA's TLS side: its node certificate, chain up to the root.
        self.tls = w.Identity(name, self.node_key, self.ca_cert, self.root)
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _make(self, pub, cn, is_ca, address):
        now = datetime.datetime.now(datetime.timezone.utc)
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snoop root")])
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(root_name).public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), True))
        if not is_ca:
            b = b.add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]), False)
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("snoop://" + address)]), False)
        return b.sign(self.root_key, hashes.SHA256())

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _reply(self, req, args, status="ok", payload=None, error=None, extra=None):
        ex = {"re": req.message_id, "status": status}
        if error:
            ex["error"] = error
        ex.update(extra or {})
        return w.build("reply", args, self.name, payload=payload,
                       key=self.node_key, extra=ex).body

    def _serve(self, c):
        with c:
            c.settimeout(10)
            try:
                c = w.server_wrap(c, self.tls)
                req = w.parse(w.recv_frame(c))
            except (w.WireError, w.Dropped, socket.timeout, OSError):
                return
            # As a node does: without a client certificate only get/csr.
            if req.method != "get/csr" and w.peer_cn(c) != req.id:
                w.send_frame(c, self._reply(req, req.method, "error",
                                            error="needs a client certificate"))
                return
            w.send_frame(c, self._handle(req))

    def _handle(self, req):
        pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM).decode()
        if req.method == "get/csr":
            try:
                csr = x509.load_pem_x509_csr(req.payload.encode())
            except (ValueError, AttributeError):
                return self._reply(req, "get/csr", "error", error="bad CSR")
            cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if (not req.verify_with(csr.public_key()) or not csr.is_signature_valid
                    or not cn or cn[0].value != req.id or not NAME_RE.match(req.id)
                    or req.id in ("root", "crl")):
                return self._reply(req, "get/csr", "error", error="refused")
            with self.lock:
                old = self.certs.get(req.id)
                if old is not None and w.spki(old) != w.spki(csr.public_key()):
                    return self._reply(req, "get/csr", "error", error="name taken")
                cert = self._make(csr.public_key(), req.id, False, req.args)
                self.certs[req.id] = cert
            return self._reply(req, "get/csr", payload=pem(cert), extra={
                "root": pem(self.root), "ca_cert": pem(self.ca_cert)})
        if req.method == "get/crt":
            with self.lock:
                sender = self.certs.get(req.id)
                if sender is None or not req.verify_with(sender):
                    return self._reply(req, "get/crt", "error", error="who are you")
                if req.args == "*":
                    return self._reply(req, "get/crt", payload="".join(
                        pem(x) for x in self.certs.values()))
                cert = self.certs.get(req.args or self.name)
            if cert is None:
                return self._reply(req, "get/crt", "error", error="unknown name")
            return self._reply(req, "get/crt", payload=pem(cert))
        return self._reply(req, req.method, "error", error="unknown method")

    def close(self):
        self.stop = True
        self.sock.close()


@pytest.fixture(scope="module")
def fake_ca():
    ca = FakeCA()
    yield ca
    ca.close()


def test_enroll_against_fake_ca(fake_ca, key, other_key):
    res = w.enroll(fake_ca.addr, "alice", key, "127.0.0.1:9")
    assert res.ok, res
    assert w.cert_cn(res.cert) == "alice"
    assert w.issued_by(res.cert, res.root)
    assert res.reply.verify_with(res.ca_cert)
    assert w.spki(res.cert) == w.spki(key)
    # Same key again: fine. Another key for the same name: refused.
    assert w.enroll(fake_ca.addr, "alice", key, "127.0.0.1:9").ok
    assert not w.enroll(fake_ca.addr, "alice", other_key, "127.0.0.1:9").ok
    # The refusal shapes the black-box tests send.
    assert not w.enroll(fake_ca.addr, "bob", key, "x:1", unsigned=True).ok
    assert not w.enroll(fake_ca.addr, "bob", key, "x:1", sign_key=other_key).ok
    assert not w.enroll(fake_ca.addr, "bob", key, "x:1",
                        csr_pem=w.corrupt_csr_signature(w.make_csr(key, "bob"))).ok
    assert not w.enroll(fake_ca.addr, "bob", key, "x:1", node_id="carol").ok
    assert not w.enroll(fake_ca.addr, "../x", key, "x:1").ok


def test_get_crt_against_fake_ca(fake_ca, key):
    assert w.enroll(fake_ca.addr, "dave", key, "127.0.0.1:9").ok
    _, own = w.get_crt(fake_ca.addr, "", "dave", key)
    assert own.status == "ok" and w.cert_cn(w.load_cert(own.payload)) == "ca"
    _, unknown = w.get_crt(fake_ca.addr, "nobody", "dave", key)
    assert unknown.status == "error"
    _, bundle = w.get_crt(fake_ca.addr, "*", "dave", key)
    names = {w.cert_cn(c) for c in w.split_pem_bundle(bundle.payload)}
    assert {"ca", "dave"} <= names
    certs, replies = w.get_all_certs(fake_ca.addr, "dave", key)
    assert len(replies) == 1 and {w.cert_cn(c) for c in certs} == names


def test_oversized_frame_header_bytes():
    assert w.frame_header(w.FRAME_MAX + 1) == struct.pack(">I", 1024 * 1024 + 1)
