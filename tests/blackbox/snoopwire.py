"""snoopwire: a small, independent Python client for the snoopfs wire protocol.

The black-box tests speak the protocol themselves, so that they can send what
a well-behaved node never would (unsigned, forged, oversized or broken
messages) and check every field of what comes back.

The wire, as CONTRACT.md and the test brief describe it:

* TLS 1.3 over TCP, mutually authenticated with the PKI's certificates. A
  client presents its node certificate (an Identity) and then may only speak
  as that node; a client without one (anonymous) may only enroll (get/csr).
  The client checks the server's chain against the root and the server's
  name itself (check_hostname is off: node names are not host names).
  ``connect`` picks the identity from the registry below by the sender name
  of the first message unless told otherwise; ``plain=True`` gives the raw
  TCP socket for tests that check that plain TCP is refused.
* Each message is one frame: a 4-byte big-endian length, then that many
  bytes of JSON. Frames over 1 MiB are refused.
* The frame JSON is exactly
  ``{"message":`` M ``,"signature":"`` base64(sig) ``"}``
  where M is compact JSON (separators ``(",", ":")``, fixed key order) of
  ``{"meta": {"method", "args", "id", "message_id", "timestamp",
  "payload_type", "extra"}, "payload": ...}``.
* The signature is RSA-PSS, SHA-256, MGF1-SHA-256, salt length 32, over the
  exact bytes of M. An unsigned message has ``"signature":""``.

Nothing here depends on pytest, so the module can be used from a shell too.
"""

import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

FRAME_MAX = 1024 * 1024
FRAME_HDR = 4
SALT_LEN = 32
MESSAGE_ID_LIMIT = 1 << 53

PREFIX = b'{"message":'
SIG_OPEN = b',"signature":"'
SUFFIX = b'"}'

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PEM_CERT_RE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----\r?\n?",
    re.S)
META_KEYS = ["method", "args", "id", "message_id", "timestamp",
             "payload_type", "extra"]


class WireError(Exception):
    """A frame or message that does not follow the wire format."""


class Dropped(Exception):
    """The peer closed or reset the connection instead of answering."""


class TLSRefused(Dropped):
    """The TLS handshake failed (either side refused the other)."""


# --- frames -----------------------------------------------------------------

def frame_header(length):
    """The 4-byte big-endian header for a LENGTH-byte frame (any length)."""
    return struct.pack(">I", length)


def send_frame(sock, body):
    sock.sendall(frame_header(len(body)) + body)


def _recv_exact(sock, n):
    chunks = []
    while n > 0:
        try:
            chunk = sock.recv(min(n, 65536))
        except ConnectionResetError as e:
            raise Dropped("connection reset") from e
        except ssl.SSLError as e:
            # A TLS alert (e.g. our certificate refused after the
            # handshake, as TLS 1.3 reports it) ends the connection.
            raise Dropped("TLS: %s" % e) from e
        if not chunk:
            raise Dropped("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock, max_len=FRAME_MAX):
    """One frame body. Raises Dropped on EOF/reset, socket.timeout on time."""
    (length,) = struct.unpack(">I", _recv_exact(sock, FRAME_HDR))
    if length > max_len:
        raise WireError("peer announced a %d-byte frame" % length)
    return _recv_exact(sock, length)


# --- messages ---------------------------------------------------------------

def timestamp_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
        now.microsecond // 1000)


def new_message_id():
    return secrets.randbelow(MESSAGE_ID_LIMIT)


def pss():
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LEN)


def sign(key, data):
    return key.sign(data, pss(), hashes.SHA256())


def verify(public_key, data, sig):
    """True if SIG is a valid RSA-PSS/SHA-256 (salt 32) signature of DATA."""
    try:
        public_key.verify(sig, data, pss(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def encode_message(method, args, node_id, payload=None, payload_type=None,
                   extra=None, message_id=None, timestamp=None):
    """The compact JSON bytes M that a signature covers.

    PAYLOAD may be None (type "none"), str (type "text") or bytes (type
    "bytes", sent as base64); PAYLOAD_TYPE overrides the inferred type so
    that tests can send inconsistent messages.
    """
    if payload_type is None:
        if payload is None:
            payload_type = "none"
        elif isinstance(payload, bytes):
            payload_type = "bytes"
        else:
            payload_type = "text"
    if isinstance(payload, bytes):
        payload = base64.b64encode(payload).decode("ascii")
    meta = {
        "method": method,
        "args": args,
        "id": node_id,
        "message_id": new_message_id() if message_id is None else message_id,
        "timestamp": timestamp_now() if timestamp is None else timestamp,
        "payload_type": payload_type,
        "extra": dict(extra or {}),
    }
    msg = {"meta": meta, "payload": payload}
    return json.dumps(msg, separators=(",", ":")).encode("utf-8")


def frame_body(message_bytes, signature=b""):
    """The frame JSON around M with a raw signature (b"" = unsigned)."""
    return (PREFIX + message_bytes + SIG_OPEN +
            base64.b64encode(signature) + SUFFIX)


class Request:
    """A message ready to send: its bytes, its meta and its frame body."""

    def __init__(self, message_bytes, body):
        self.message_bytes = message_bytes
        self.body = body
        self.meta = json.loads(message_bytes)["meta"]

    @property
    def message_id(self):
        return self.meta["message_id"]


def build(method, args, node_id, payload=None, key=None, sign_with=None,
          **kw):
    """A Request signed by KEY (or unsigned if KEY is None).

    SIGN_WITH, if given, is a function(bytes) -> signature bytes used instead
    of KEY, for tests that forge or corrupt signatures.
    """
    m = encode_message(method, args, node_id, payload=payload, **kw)
    if sign_with is not None:
        sig = sign_with(m)
    elif key is not None:
        sig = sign(key, m)
    else:
        sig = b""
    return Request(m, frame_body(m, sig))


class Message:
    """A parsed frame: the exact signed bytes, the JSON and the signature."""

    def __init__(self, body):
        self.body = body
        if not body.startswith(PREFIX) or not body.endswith(SUFFIX):
            raise WireError("frame is not in the fixed layout: %r" % body[:80])
        cut = body.rfind(SIG_OPEN)
        if cut < len(PREFIX):
            raise WireError("frame has no signature field")
        self.signed = body[len(PREFIX):cut]
        sig_b64 = body[cut + len(SIG_OPEN):-len(SUFFIX)]
        try:
            self.signature = base64.b64decode(sig_b64, validate=True)
        except (binascii.Error, ValueError) as e:
            raise WireError("signature is not base64") from e
        try:
            whole = json.loads(body)
            self.message = json.loads(self.signed)
        except ValueError as e:
            raise WireError("frame is not JSON: %s" % e) from e
        if whole.get("message") != self.message or list(whole) != [
                "message", "signature"]:
            raise WireError("frame fields are not message, signature")
        if list(self.message) != ["meta", "payload"]:
            raise WireError("message keys are %r" % list(self.message))
        self.meta = self.message["meta"]
        if list(self.meta) != META_KEYS:
            raise WireError("meta keys are %r" % list(self.meta))

    # Convenience accessors.
    method = property(lambda self: self.meta["method"])
    args = property(lambda self: self.meta["args"])
    id = property(lambda self: self.meta["id"])
    message_id = property(lambda self: self.meta["message_id"])
    timestamp = property(lambda self: self.meta["timestamp"])
    payload_type = property(lambda self: self.meta["payload_type"])
    extra = property(lambda self: self.meta["extra"])

    @property
    def payload(self):
        """The payload: None, str, or bytes (decoded from base64)."""
        p = self.message["payload"]
        if self.payload_type == "bytes" and p is not None:
            return base64.b64decode(p, validate=True)
        return p

    @property
    def status(self):
        return self.extra.get("status")

    def is_signed(self):
        return len(self.signature) > 0

    def verify_with(self, cert_or_key):
        """True if the signature verifies with a certificate or public key."""
        pub = cert_or_key
        if isinstance(cert_or_key, x509.Certificate):
            pub = cert_or_key.public_key()
        return self.is_signed() and verify(pub, self.signed, self.signature)

    def check_shape(self):
        """Raises WireError unless every meta field has its documented type."""
        m = self.meta
        for k in ("method", "args", "id", "timestamp", "payload_type"):
            if not isinstance(m[k], str):
                raise WireError("meta.%s is not a string" % k)
        mid = m["message_id"]
        if isinstance(mid, bool) or not isinstance(mid, int) or not (
                0 <= mid < MESSAGE_ID_LIMIT):
            raise WireError("meta.message_id %r out of range" % (mid,))
        if not TIMESTAMP_RE.match(m["timestamp"]):
            raise WireError("meta.timestamp %r" % m["timestamp"])
        if m["payload_type"] not in ("none", "text", "bytes"):
            raise WireError("meta.payload_type %r" % m["payload_type"])
        if not isinstance(m["extra"], dict):
            raise WireError("meta.extra is not an object")
        for k, v in m["extra"].items():
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise WireError("meta.extra.%s is not flat" % k)
        p = self.message["payload"]
        want = {"none": type(None), "text": str, "bytes": str}
        if not isinstance(p, want[m["payload_type"]]):
            raise WireError("payload does not match payload_type")

    def __repr__(self):
        return "<Message %s args=%r id=%r extra=%r>" % (
            self.method, self.args, self.id, self.extra)


def parse(body):
    return Message(body)


# --- connections ------------------------------------------------------------

def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


# --- TLS ---------------------------------------------------------------------
#
# Identities (a node's key and certificate, and the root it trusts) are kept
# in a registry by name: enroll() adds every node it enrolls, and tests add
# the ones they make otherwise with remember().

_lock = threading.Lock()
_identities = {}   # name -> Identity
_roots = {}        # fingerprint -> root certificate
_anon_ctx = {}     # the shared anonymous context (no root: no check)


class Identity:
    """A node as a TLS client or server: NAME, KEY, CERT and its ROOT."""

    def __init__(self, name, key, cert, root=None):
        self.name, self.key, self.cert, self.root = name, key, cert, root
        self._ctx = {}

    def load_into(self, ctx, chain):
        """Loads key and certificate (plus ROOT if CHAIN) into CTX.

        Python's ssl reads them from files only: a private temporary
        directory holds them for the moment it takes."""
        d = tempfile.mkdtemp(prefix="snoopwire-")
        try:
            kp, cp = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
            with open(kp, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(key_to_pem(self.key))
            with open(cp, "wb") as f:
                f.write(cert_pem(self.cert))
                if chain and self.root is not None:
                    f.write(cert_pem(self.root))
            ctx.load_cert_chain(cp, kp)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def context(self, server=False):
        """An SSLContext presenting this identity (cached)."""
        with _lock:
            ctx = self._ctx.get(server)
            if ctx is None:
                ctx = _new_context(server, self.root)
                self.load_into(ctx, chain=server)
                self._ctx[server] = ctx
            return ctx


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _new_context(server, root):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server
                         else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    if root is not None:
        ctx.load_verify_locations(cadata=cert_pem(root).decode("ascii"))
        ctx.verify_mode = ssl.CERT_OPTIONAL if server else ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def remember_root(root):
    with _lock:
        _roots[fingerprint(root)] = root


def remember(name, key, cert, root=None):
    """Registers NAME's identity for connections that speak as NAME."""
    ident = Identity(name, key, cert, root)
    if root is not None:
        remember_root(root)
    with _lock:
        _identities[name] = ident
    return ident


def identity(name):
    with _lock:
        return _identities.get(name)


def client_context(ident=None, root=None, minimum=None, maximum=None):
    """A client SSLContext: presenting IDENT (or nothing), trusting ROOT
    (default: the identity's root; without one the server is not checked,
    like an enrolling node that has only a pin, which Python's ssl cannot
    check against the chain).
    MINIMUM/MAXIMUM override the TLS versions (for the refusal tests)."""
    if root is None and minimum is None and maximum is None:
        if ident is not None:
            return ident.context()
        with _lock:
            if "anon" not in _anon_ctx:
                _anon_ctx["anon"] = _new_context(False, None)
            return _anon_ctx["anon"]
    ctx = _new_context(False, root if root is not None else (
        ident.root if ident is not None else None))
    if ident is not None:
        ident.load_into(ctx, chain=False)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def peer_cn(sock):
    """The CN of the TLS peer's certificate, or None."""
    der = sock.getpeercert(binary_form=True)
    return cert_cn(x509.load_der_x509_certificate(der)) if der else None


def _sender_of(body):
    """meta.id of a frame body, if it has one."""
    if isinstance(body, Request):
        return body.meta.get("id")
    try:
        cut = body.rfind(SIG_OPEN)
        return json.loads(body[len(PREFIX):cut])["meta"]["id"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def connect(addr, timeout=15.0, as_node=None, expect=None, ctx=None,
            plain=False):
    """A TLS connection to ADDR.

    AS_NODE: an Identity or a registered name to present (None: anonymous).
    EXPECT: the name the server's certificate must carry (None: any).
    CTX: an SSLContext to use instead. PLAIN: raw TCP, no TLS at all.
    Raises TLSRefused if the handshake fails.
    """
    s = socket.create_connection(split_addr(addr), timeout=timeout)
    s.settimeout(timeout)
    if plain:
        return s
    ident = identity(as_node) if isinstance(as_node, str) else as_node
    if isinstance(as_node, str) and ident is None:
        s.close()
        raise KeyError("no identity registered for %r" % as_node)
    if ctx is None:
        ctx = client_context(ident)
    try:
        t = ctx.wrap_socket(s, server_hostname=None)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError,
            socket.timeout) as e:
        s.close()
        raise TLSRefused("TLS handshake with %s failed: %s" % (addr, e)) \
            from e
    except OSError as e:
        s.close()
        raise TLSRefused("TLS handshake with %s failed: %r" % (addr, e)) \
            from e
    if expect is not None and peer_cn(t) != expect:
        cn = peer_cn(t)
        t.close()
        raise TLSRefused("the server at %s is %r, not %r" % (addr, cn, expect))
    return t


def make_root(key=None, cn="snoop root"):
    """A self-signed root (key, certificate) of a CA of our own, for tests
    that need certificates the node's CA never issued."""
    key = key or new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                key.public_key()), False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_identity(name, key=None, root=None, address="127.0.0.1:9"):
    """An Identity for NAME issued by ROOT ((key, cert) from make_root; a
    new root if None), shaped like a node certificate."""
    key = key or new_key()
    root_key, root_cert = root or make_root()
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, name)]))
            .issuer_name(root_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=True, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), True)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
                 x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("snoop://" + address)]), False)
            .add_extension(x509.AuthorityKeyIdentifier
                           .from_issuer_subject_key_identifier(ski), False)
            .sign(root_key, hashes.SHA256()))
    return Identity(name, key, cert, root_cert)


def server_wrap(conn, ident):
    """Wraps an accepted socket as a TLS server presenting IDENT (chain
    with its root); a client certificate is asked for, not required."""
    return ident.context(server=True).wrap_socket(conn, server_side=True)


def _auto(body, as_node):
    """The identity to present for BODY: AS_NODE if given ("anon": none),
    else the registered identity of the message's sender, if any."""
    if as_node == "anon":
        return None
    if as_node is not None:
        return as_node
    name = _sender_of(body)
    return identity(name) if isinstance(name, str) else None


def exchange(addr, body, timeout=15.0, as_node=None, expect=None):
    """Sends one frame on a fresh connection and returns the reply.

    The connection presents the registered identity of the message's sender
    (AS_NODE overrides; "anon" = none). Returns a Message, or None if the
    peer dropped the connection (or refused the TLS handshake) instead of
    answering. A reply that is not in the wire format raises WireError; no
    answer within TIMEOUT raises socket.timeout.
    """
    ident = _auto(body, as_node)
    if isinstance(body, Request):
        body = body.body
    try:
        s = connect(addr, timeout, as_node=ident, expect=expect)
    except TLSRefused:
        return None
    with s:
        try:
            send_frame(s, body)
            return parse(recv_frame(s))
        except (Dropped, BrokenPipeError, ConnectionResetError,
                ssl.SSLError):
            return None


# --- keys, CSRs and certificates -------------------------------------------

def new_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_to_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def key_from_pem(pem):
    return serialization.load_pem_private_key(pem, password=None)


def make_csr(key, name):
    """A CSR PEM (str) with subject CN=NAME, signed by KEY."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(
        key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def der_to_pem(der, label):
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        label, "\n".join(lines), label)


def corrupt_csr_signature(csr_pem):
    """The same CSR with one bit of its self-signature flipped.

    The signature BIT STRING is the last element of the DER, so flipping a
    bit near the end breaks the signature and nothing else.
    """
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(
        serialization.Encoding.DER))
    der[-5] ^= 0x01
    return der_to_pem(bytes(der), "CERTIFICATE REQUEST")


def load_cert(pem):
    if isinstance(pem, str):
        pem = pem.encode("ascii")
    return x509.load_pem_x509_certificate(pem)


def split_pem_bundle(text):
    """All certificates in a PEM bundle, in order."""
    if isinstance(text, str):
        text = text.encode("ascii")
    return [x509.load_pem_x509_certificate(m.group(0))
            for m in PEM_CERT_RE.finditer(text)]


def cert_cn(cert):
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else None


def fingerprint(cert):
    """"sha256:<64 lower hex>" of the certificate DER."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def spki(obj):
    """DER SubjectPublicKeyInfo of a key, a public key or a certificate."""
    if isinstance(obj, x509.Certificate):
        obj = obj.public_key()
    if hasattr(obj, "public_key"):
        obj = obj.public_key()
    return obj.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def issued_by(cert, issuer):
    """True if ISSUER's key made CERT's signature (PKCS#1 v1.5 or PSS)."""
    if cert.issuer != issuer.subject:
        return False
    pub = issuer.public_key()
    algo = cert.signature_hash_algorithm
    if cert.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.RSASSA_PSS:
        pads = [padding.PSS(mgf=padding.MGF1(algo),
                            salt_length=padding.PSS.AUTO)]
    else:
        pads = [padding.PKCS1v15()]
    for pad in pads:
        try:
            pub.verify(cert.signature, cert.tbs_certificate_bytes, pad, algo)
            return True
        except InvalidSignature:
            pass
    return False


# --- the methods the tests use ---------------------------------------------

def csr_request(name, key, address, csr_pem=None, node_id=None,
                sign_key=None, unsigned=False, sign_with=None, token=None):
    """A get/csr Request: meta.id NAME (or NODE_ID), args ADDRESS.

    By default the CSR is made with KEY for CN=NAME and the message is signed
    with KEY; every argument can be bent for the refusal tests. TOKEN, a
    join token from `snoopfs token`, goes in extra "token" (a CA made
    without --open-enrollment refuses a get/csr without one).
    """
    if csr_pem is None:
        csr_pem = make_csr(key, name)
    signer = None if unsigned else (sign_key or key)
    extra = {"token": token} if token is not None else None
    return build("get/csr", address, name if node_id is None else node_id,
                 payload=csr_pem, key=signer, sign_with=sign_with,
                 extra=extra)


def check_reply_to(reply, request, method_args):
    """Raises WireError unless REPLY is a well-formed reply to REQUEST.

    An "ok" reply must name the request exactly (args = its method, extra.re
    = its message_id). An error reply may leave both out, because a request
    that failed to parse has no trustworthy method or id; if it has them,
    they must match.
    """
    reply.check_shape()
    if reply.method != "reply":
        raise WireError("reply method is %r" % reply.method)
    if reply.status not in ("ok", "error"):
        raise WireError("reply status %r" % reply.status)
    lenient = reply.status == "error"
    if reply.args != method_args and not (lenient and reply.args == ""):
        raise WireError("reply args %r, want %r" % (reply.args, method_args))
    if reply.extra.get("re") != request.message_id and not (
            lenient and "re" not in reply.extra):
        raise WireError("reply extra.re %r, want %r" % (
            reply.extra.get("re"), request.message_id))
    if reply.status == "error":
        err = reply.extra.get("error")
        if not isinstance(err, str) or not err:
            raise WireError("error reply without a reason")
        if reply.payload_type != "none" or reply.message["payload"] is not None:
            raise WireError("error reply carries a payload")


class EnrollResult:
    """What a get/csr exchange gave: reply (or None if dropped) and certs."""

    def __init__(self, request, reply):
        self.request = request
        self.reply = reply
        self.cert = self.root = self.ca_cert = None
        if reply is not None and reply.status == "ok":
            self.cert = load_cert(reply.payload)
            self.root = load_cert(reply.extra["root"])
            self.ca_cert = load_cert(reply.extra["ca_cert"])

    @property
    def ok(self):
        return self.reply is not None and self.reply.status == "ok"

    def __repr__(self):
        return "<EnrollResult reply=%r>" % (self.reply,)


def enroll(ca_addr, name, key, address, timeout=30.0, as_node="anon", **kw):
    """get/csr over anonymous TLS (AS_NODE overrides). A success registers
    the new identity (remember()) so later requests as NAME present it."""
    req = csr_request(name, key, address, **kw)
    reply = exchange(ca_addr, req, timeout=timeout, as_node=as_node)
    if reply is not None:
        check_reply_to(reply, req, "get/csr")
    res = EnrollResult(req, reply)
    if res.ok and cert_cn(res.cert) == name and spki(res.cert) == spki(key):
        remember(name, key, res.cert, res.root)
    return res


def get_crt(addr, args, node_id, key, timeout=15.0, as_node=None, **kw):
    """A get/crt exchange; returns (request, reply or None)."""
    req = build("get/crt", args, node_id, key=key, **kw)
    reply = exchange(addr, req, timeout=timeout, as_node=as_node)
    if reply is not None:
        check_reply_to(reply, req, "get/crt")
    return req, reply


def get_all_certs(addr, node_id, key, timeout=15.0, max_pages=1000):
    """Every certificate get/crt "*" yields, following pages if the CA pages.

    The brief describes one bundle of all certificates. The CA may instead
    answer one page at a time: extra "more" (1 if more remain) and "last"
    (the last name listed) in the reply, and extra "after" in the next
    request. Both are accepted here. Returns (certs, replies); raises
    WireError on a refusal, a drop, or a page that makes no progress.
    """
    certs, replies, after = [], [], None
    for _ in range(max_pages):
        extra = {} if after is None else {"after": after}
        req, reply = get_crt(addr, "*", node_id, key, timeout=timeout,
                             extra=extra)
        if reply is None or reply.status != "ok":
            raise WireError("get/crt * refused: %r" % (reply,))
        replies.append(reply)
        certs += split_pem_bundle(reply.payload or "")
        more = reply.extra.get("more", 0)
        last = reply.extra.get("last", "")
        if not more:
            return certs, replies
        if not isinstance(last, str) or not last or last == after:
            raise WireError("get/crt * page without progress: last=%r" % (last,))
        after = last
    raise WireError("get/crt * did not end within %d pages" % max_pages)


# --- blobs (post/blob) -------------------------------------------------------
#
# The file-delivery wire, as the brief describes it: a signed "post/blob"
# message (args = relative path, no payload, extra id/size/chunks/recipients/
# key:<name>/sha256), a signed reply (status ok with "have", or an error),
# then raw binary frames (4-byte big-endian length of what follows, 8-byte
# big-endian chunk index, the sealed chunk), and at the end a signed receipt
# ("reply", status ok, extra sha256 of the sealed chunks stored). A blob of
# one chunk may instead carry extra "push": 1 and its frame right behind the
# request: then the first reply is already the receipt (or an error).

BLOB_CHUNK = 64 * 1024
BLOB_TAG = 16
BLOB_ID_LEN = 16


def blob_chunks(size):
    """Number of chunks of a SIZE-byte file (an empty file is one chunk)."""
    return max(1, -(-size // BLOB_CHUNK))


def blob_nonce(n, final):
    """The 12-byte nonce of chunk N: 3 zero bytes, N (8 bytes BE), final flag."""
    return b"\0\0\0" + struct.pack(">Q", n) + (b"\x01" if final else b"\x00")


def seal_chunk(key, blob_id, n, final, plaintext):
    """Chunk N sealed with AES-256-GCM: ciphertext followed by the 16-byte tag."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM(key).encrypt(blob_nonce(n, final), plaintext, blob_id)


def open_chunk(key, blob_id, n, final, sealed):
    """The plaintext of sealed chunk N; raises InvalidTag if it does not open."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM(key).decrypt(blob_nonce(n, final), sealed, blob_id)


def seal_blob(data, key=None, blob_id=None):
    """DATA cut into 64 KiB chunks and sealed; returns (key, id, [chunks])."""
    key = key or secrets.token_bytes(32)
    blob_id = blob_id or secrets.token_bytes(BLOB_ID_LEN)
    n = blob_chunks(len(data))
    chunks = [seal_chunk(key, blob_id, i, i == n - 1,
                         data[i * BLOB_CHUNK:(i + 1) * BLOB_CHUNK])
              for i in range(n)]
    return key, blob_id, chunks


def sealed_hash(chunks):
    """"sha256:<hex>" of sealed CHUNKS concatenated, as post/blob carries it."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return "sha256:" + h.hexdigest()


def oaep():
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()),
                        algorithm=hashes.SHA256(), label=None)


def wrap_key(cert_or_key, content_key):
    """CONTENT_KEY wrapped with RSA-OAEP(SHA-256) for a certificate or key, base64."""
    pub = cert_or_key
    if isinstance(pub, x509.Certificate):
        pub = pub.public_key()
    if hasattr(pub, "public_key"):
        pub = pub.public_key()
    return base64.b64encode(pub.encrypt(content_key, oaep())).decode("ascii")


def blob_extra(blob_id, size, chunks, recipients, wrapped, sha256):
    """The extra of a post/blob: WRAPPED maps recipient name -> base64 key."""
    extra = {"id": blob_id.hex() if isinstance(blob_id, bytes) else blob_id,
             "size": size, "chunks": chunks,
             "recipients": ",".join(recipients) if not isinstance(
                 recipients, str) else recipients}
    for name, wk in wrapped.items():
        extra["key:" + name] = wk
    extra["sha256"] = sha256
    return extra


def chunk_frame(index, sealed):
    """One raw chunk frame: length of what follows, index (8 bytes BE), chunk."""
    body = struct.pack(">Q", index) + sealed
    return frame_header(len(body)) + body


def have_set(have, nchunks):
    """The chunk indexes a "have" value names (a count, or a list of indexes)."""
    if have is None or isinstance(have, bool):
        return set()
    if isinstance(have, int):
        return set(range(min(max(have, 0), nchunks)))
    if isinstance(have, list):
        return {i for i in have if isinstance(i, int)}
    if isinstance(have, str) and have.isdigit():
        return set(range(min(int(have), nchunks)))
    return set()


class BlobOutcome:
    """What a post/blob exchange gave.

    stage: "post" (refused or dropped at the post/blob message), "chunks"
    (refused or dropped while or after chunks were sent), or "receipt" (a
    receipt came). reply: the reply to post/blob (None if dropped);
    final: the last message after the chunks (None if dropped or none came).
    """

    def __init__(self):
        self.stage = "post"
        self.request = None
        self.reply = None
        self.final = None
        self.dropped = False
        self.timed_out = False

    @property
    def accepted(self):
        return (self.final is not None and self.final.method == "reply"
                and self.final.status == "ok")

    def __repr__(self):
        return "<BlobOutcome stage=%s reply=%r final=%r dropped=%s timeout=%s>" % (
            self.stage, self.reply, self.final, self.dropped, self.timed_out)


def post_blob(addr, node_id, key, path, chunks, extra, frames=None,
              timeout=30.0, sign_with=None, close_early=False,
              unsigned=False, as_node=None, push=False):
    """Runs one post/blob exchange and returns a BlobOutcome.

    CHUNKS are the sealed chunks; FRAMES, if given, is the list of
    (index, bytes) frames to send instead of every chunk in order (chunks the
    receiver says it has are skipped only in the default order). With
    CLOSE_EARLY the connection is closed after the frames without waiting
    for a receipt. With PUSH the request carries extra "push": 1 and the
    frames follow it at once; the one reply is then also the final message.
    """
    out = BlobOutcome()
    if push:
        extra = dict(extra, push=1)
    req = build("post/blob", path, node_id, key=None if unsigned else key,
                sign_with=sign_with, extra=extra)
    out.request = req
    try:
        s = connect(addr, timeout, as_node=_auto(req, as_node))
    except TLSRefused:
        out.dropped = True
        return out
    with s:
        if push:
            _push_blob(s, req, list(enumerate(chunks)) if frames is None
                       else frames, out)
            return out
        try:
            send_frame(s, req.body)
            out.reply = parse(recv_frame(s))
        except (Dropped, BrokenPipeError, ConnectionResetError,
                ssl.SSLError):
            out.dropped = True
            return out
        except socket.timeout:
            out.timed_out = True
            return out
        if out.reply.status != "ok":
            return out
        out.stage = "chunks"
        if frames is None:
            have = have_set(out.reply.extra.get("have"), len(chunks))
            frames = [(i, c) for i, c in enumerate(chunks) if i not in have]
        try:
            for index, sealed in frames:
                s.sendall(chunk_frame(index, sealed))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            out.dropped = True
        if close_early:
            return out
        try:
            out.final = parse(recv_frame(s))
            if out.final.status == "ok":
                out.stage = "receipt"
        except (Dropped, ConnectionResetError):
            out.dropped = True
        except socket.timeout:
            out.timed_out = True
    return out


def push_frames(sock, req, frames):
    """Sends the post/blob REQ and FRAMES at once; returns the one reply."""
    send_frame(sock, req.body)
    for index, sealed in frames:
        sock.sendall(chunk_frame(index, sealed))
    return parse(recv_frame(sock))


def _push_blob(sock, req, frames, out):
    try:
        out.reply = push_frames(sock, req, frames)
    except (Dropped, BrokenPipeError, ConnectionResetError, ssl.SSLError):
        out.dropped = True
        return
    except socket.timeout:
        out.timed_out = True
        return
    out.final = out.reply
    if out.reply.status == "ok":
        out.stage = "receipt"


def send_file(addr, node_id, key, path, data, recipients, certs, timeout=30.0,
              as_node=None):
    """A well-formed post/blob of DATA for RECIPIENTS (name -> certificate)."""
    ckey, blob_id, chunks = seal_blob(data)
    wrapped = {name: wrap_key(certs[name], ckey) for name in recipients}
    extra = blob_extra(blob_id, len(data), len(chunks), list(recipients),
                       wrapped, sealed_hash(chunks))
    return post_blob(addr, node_id, key, path, chunks, extra, timeout=timeout,
                     as_node=as_node)


# --- post/batch: many small files under one signature ---------------------------

BATCH_FILES_MAX = 30


def batch_nonce(index):
    """The nonce that wraps line INDEX's content key: 4 zero bytes, INDEX (8 BE)."""
    return b"\0\0\0\0" + struct.pack(">Q", index)


def batch_wrap(batch_key, index, blob_id_hex, content_key):
    """CONTENT_KEY wrapped under BATCH_KEY for line INDEX, base64 (48 bytes)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return base64.b64encode(AESGCM(batch_key).encrypt(
        batch_nonce(index), content_key, blob_id_hex.encode("ascii"))).decode()


class BatchFile:
    """One file of a batch: its path, data, and how it was sealed."""

    def __init__(self, path, data, recipients=("bob",)):
        self.path = path
        self.data = data
        self.recipients = list(recipients)
        self.key, self.blob_id, self.chunks = seal_blob(data)
        assert len(self.chunks) == 1, "a batch carries files of one chunk"
        self.sha256 = sealed_hash(self.chunks)

    @property
    def id_hex(self):
        return self.blob_id.hex()


def batch_text(files, batch_key):
    """The request's payload: one line per file (src/wire/batch.h)."""
    lines = []
    for i, f in enumerate(files):
        lines.append("%s %d %s %s %s %s\n" % (
            f.id_hex, len(f.data), f.sha256,
            batch_wrap(batch_key, i, f.id_hex, f.key),
            ",".join(f.recipients), f.path))
    return "".join(lines)


def build_batch(node_id, key, files, recipient_cert, recipient="bob",
                batch_key=None, text=None, extra=None, **kw):
    """A signed post/batch Request for FILES (returns (request, batch_key))."""
    batch_key = batch_key or secrets.token_bytes(32)
    ex = {"count": len(files), "key:" + recipient: wrap_key(recipient_cert,
                                                             batch_key)}
    ex.update(extra or {})
    req = build("post/batch", "", node_id,
                payload=batch_text(files, batch_key) if text is None else text,
                key=kw.pop("key_override", key), extra=ex, **kw)
    return req, batch_key


PEERKEY_METHOD = "post/batch/peerkey"


def peerkey_batch_key(peer_key, salt, sender, recipient):
    """post/batch/peerkey's batch key: HKDF-SHA256(PEER_KEY, SALT, info
    "snoopfs post/batch/peerkey SENDER>RECIPIENT") (src/wire/batch.h)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    info = ("snoopfs post/batch/peerkey %s>%s" % (sender, recipient)).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=info).derive(peer_key)


def build_peerkey_batch(node_id, key, files, recipient_cert, peer_key,
                        recipient="bob", salt=None, wrapped=None,
                        batch_key=None, extra=None, **kw):
    """A signed post/batch/peerkey Request for FILES under PEER_KEY (sent
    RSA-wrapped, or as WRAPPED) and a fresh SALT; returns (request, salt).
    BATCH_KEY overrides the derived key the lines are wrapped under."""
    salt = os.urandom(16) if salt is None else salt
    bkey = batch_key or peerkey_batch_key(peer_key, salt, node_id, recipient)
    ex = {"count": len(files),
          "key:" + recipient: wrapped or wrap_key(recipient_cert, peer_key),
          "salt": base64.b64encode(salt).decode()}
    ex.update(extra or {})
    ex = {k: v for k, v in ex.items() if v is not None}
    req = build(PEERKEY_METHOD, "", node_id, payload=batch_text(files, bkey),
                key=key, extra=ex, **kw)
    return req, salt


def batch_frames(files):
    """The raw frames that follow a batch: line index (8 BE) | sealed chunk."""
    return [(i, f.chunks[0]) for i, f in enumerate(files)]


def parse_batch_receipt(text):
    """The receipt's lines as [(index, status, detail)]."""
    out = []
    for line in (text or "").splitlines():
        index, status, detail = line.split(" ", 2)
        out.append((int(index), status, detail))
    return out


def post_batch(addr, node_id, req, frames, timeout=30.0, as_node=None):
    """Sends REQ and FRAMES at once; returns the reply (None if dropped)."""
    try:
        s = connect(addr, timeout, as_node=_auto(req, as_node))
    except TLSRefused:
        return None
    with s:
        try:
            return push_frames(s, req, frames)
        except (Dropped, BrokenPipeError, ConnectionResetError, ssl.SSLError,
                socket.timeout):
            return None
