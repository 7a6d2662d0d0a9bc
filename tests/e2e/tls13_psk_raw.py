"""A minimal TLS 1.3 client with external pre-shared keys (psk_dhe_ke,
X25519, TLS_AES_128_GCM_SHA256), for what no TLS library sends: the
pre_shared_key identities it is given, any bytes, each with its
obfuscated ticket age, and a binder computed with the key given for each
(None: 32 zero bytes, a binder the server refuses if it checks it).
Enough to carry an MQTT CONNECT once the handshake is done."""

import hashlib
import hmac
import os
import socket
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization

H = hashlib.sha256
HLEN = 32


def hkdf_extract(salt, ikm):
    return hmac.new(salt or b"\0" * HLEN, ikm, H).digest()


def hkdf_expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), H).digest()
        out += t
        i += 1
    return out[:n]


def expand_label(secret, label, ctx, n):
    lab = b"tls13 " + label
    return hkdf_expand(secret, struct.pack("!H", n) + bytes([len(lab)]) + lab
                       + bytes([len(ctx)]) + ctx, n)


def derive(secret, label, transcript):
    return expand_label(secret, label, H(transcript).digest(), HLEN)


def u16(b):
    return struct.pack("!H", len(b)) + b


def u8(b):
    return bytes([len(b)]) + b


def ext(t, body):
    return struct.pack("!H", t) + u16(body)


class Conn:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def recv_exact(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed by the server")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def record(self):
        hdr = self.recv_exact(5)
        return hdr, self.recv_exact(struct.unpack("!H", hdr[3:5])[0])


class Keys:
    def __init__(self, secret):
        self.key = expand_label(secret, b"key", b"", 16)
        self.iv = expand_label(secret, b"iv", b"", 12)
        self.seq = 0

    def nonce(self):
        n = bytes(a ^ b for a, b in zip(self.iv, self.seq.to_bytes(12, "big")))
        self.seq += 1
        return n

    def seal(self, ctype, data):
        inner = data + bytes([ctype])
        hdr = b"\x17\x03\x03" + struct.pack("!H", len(inner) + 16)
        return hdr + AESGCM(self.key).encrypt(self.nonce(), inner, hdr)

    def open(self, hdr, body):
        inner = AESGCM(self.key).decrypt(self.nonce(), body, hdr).rstrip(b"\0")
        return inner[-1], inner[:-1]


def handshake(port, identities, host="127.0.0.1"):
    """identities: [(identity bytes, obfuscated age, key bytes or None)].
    Returns (socket, client app Keys, server app Keys) or raises."""
    priv = X25519PrivateKey.generate()
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
    exts = (ext(43, u8(b"\x03\x04")) + ext(10, u16(b"\x00\x1d"))
            + ext(13, u16(b"\x04\x03\x08\x04\x04\x01"))
            + ext(51, u16(b"\x00\x1d" + u16(pub))) + ext(45, u8(b"\x01")))
    ids = b"".join(u16(i) + struct.pack("!I", age) for i, age, _ in identities)
    binders_len = 2 + 33 * len(identities)
    psk_ext_len = 2 + len(ids) + binders_len
    body_wo_binders = (b"\x03\x03" + os.urandom(32) + u8(b"") + u16(b"\x13\x01") + u8(b"\x00")
                       + struct.pack("!H", len(exts) + 4 + psk_ext_len) + exts
                       + struct.pack("!HH", 41, psk_ext_len) + u16(ids))
    total = len(body_wo_binders) + binders_len
    truncated = b"\x01" + total.to_bytes(3, "big") + body_wo_binders
    binders = b""
    early = {}
    for i, (_, _, key) in enumerate(identities):
        if key is None:
            binders += u8(b"\0" * 32)
            continue
        es = hkdf_extract(None, key)
        early[i] = es
        fk = expand_label(derive(es, b"ext binder", b""), b"finished", b"", HLEN)
        binders += u8(hmac.new(fk, H(truncated).digest(), H).digest())
    ch = truncated + u16(binders)
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"\x16\x03\x01" + u16(ch))
    c = Conn(s)
    hdr, sh = c.record()
    if hdr[0] == 21:
        raise ConnectionError("alert %r" % sh)
    assert hdr[0] == 22 and sh[0] == 2, (hdr, sh[:8])
    # ServerHello: its pre_shared_key (selected identity) and key_share.
    p = 4 + 2 + 32
    p += 1 + sh[p]
    p += 3  # cipher, compression
    elen = struct.unpack("!H", sh[p:p + 2])[0]
    p += 2
    end = p + elen
    selected, server_pub = None, None
    while p < end:
        t, n = struct.unpack("!HH", sh[p:p + 4])
        v = sh[p + 4:p + 4 + n]
        if t == 41:
            selected = struct.unpack("!H", v)[0]
        if t == 51:
            server_pub = v[4:]
        p += 4 + n
    assert selected is not None and server_pub is not None, "no PSK selected"
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    shared = priv.exchange(X25519PublicKey.from_public_bytes(server_pub))
    es = early[selected]
    hs = hkdf_extract(derive(es, b"derived", b""), shared)
    transcript = ch + sh
    c_hs, s_hs = derive(hs, b"c hs traffic", transcript), derive(hs, b"s hs traffic", transcript)
    rk = Keys(s_hs)
    msgs = b""
    got_fin = False
    while not got_fin:
        hdr, body = c.record()
        if hdr[0] == 20:
            continue
        if hdr[0] == 21:
            raise ConnectionError("alert %r" % body)
        ctype, data = rk.open(hdr, body)
        if ctype == 21:
            raise ConnectionError("alert %r" % data)
        msgs += data
        q = 0
        while q + 4 <= len(msgs):
            n = int.from_bytes(msgs[q + 1:q + 4], "big")
            if q + 4 + n > len(msgs):
                break
            transcript += msgs[q:q + 4 + n]
            if msgs[q] == 20:
                got_fin = True
            q += 4 + n
        msgs = msgs[q:]
    ms = hkdf_extract(derive(hs, b"derived", b""), b"\0" * HLEN)
    c_ap, s_ap = derive(ms, b"c ap traffic", transcript), derive(ms, b"s ap traffic", transcript)
    fk = expand_label(c_hs, b"finished", b"", HLEN)
    fin = b"\x14" + (32).to_bytes(3, "big") + hmac.new(fk, H(transcript).digest(), H).digest()
    s.sendall(b"\x14\x03\x03\x00\x01\x01" + Keys(c_hs).seal(22, fin))
    return s, c, Keys(c_ap), Keys(s_ap), selected


def mqtt_connect(port, identities, client_id="raw"):
    """The handshake, then an MQTT 3.1.1 CONNECT without a user name:
    returns (selected identity index, CONNACK return code)."""
    s, c, wk, rk, selected = handshake(port, identities)
    cid = client_id.encode()
    var = u16(b"MQTT") + b"\x04\x02\x00\x3c" + u16(cid)
    s.sendall(wk.seal(23, b"\x10" + bytes([len(var)]) + var))
    while True:
        hdr, body = c.record()
        ctype, data = rk.open(hdr, body)
        if ctype == 23:
            s.close()
            assert data[0] == 0x20, data
            return selected, data[3]
        if ctype == 21:
            raise ConnectionError("alert %r" % data)
