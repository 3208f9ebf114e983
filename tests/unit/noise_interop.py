#!/usr/bin/python3
"""tests/unit/noise_interop.py - our Noise_IK_25519_ChaChaPoly_SHA256 against
an independent implementation (Debian's python3-dissononce).

    /usr/bin/python3 tests/unit/noise_interop.py BUILD/tests/unit/noise_peer

noise_peer (tests/unit/noise_peer.c) runs our nb_noise_* on raw Noise
messages over its stdin/stdout. For both roles (ours initiator / dissononce
responder, and the reverse), with and without fixed ephemeral keys:
 - with fixed ephemerals, a shadow dissononce party with the same keys
   computes the message we send: it must be the same bytes;
 - the other side reads our message and we read its: the payloads, the
   initiator's static key and the handshake hash must match;
 - then ROUNDS transport messages each way (dissononce CipherState vs our
   nb_noise_aead_* with n from 0 and empty AD); our ciphertexts must be the
   bytes dissononce's cipher gives for the same key, n and plaintext.
Any difference or failed decrypt fails the test (exit 1).
"""
import os
import struct
import subprocess
import sys

from dissononce.cipher.chachapoly import ChaChaPolyCipher
from dissononce.dh.keypair import KeyPair
from dissononce.dh.x25519.private import PrivateKey
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.hash.sha256 import SHA256Hash
from dissononce.processing.handshakepatterns.interactive.IK import IKHandshakePattern
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.impl.handshakestate import HandshakeState
from dissononce.processing.impl.symmetricstate import SymmetricState

ROUNDS = 6
PROTOCOL = "Noise_IK_25519_ChaChaPoly_SHA256"


class FixedDH(X25519DH):
    """X25519 whose next GENERATE_KEYPAIR() returns a given private key."""

    def __init__(self, fixed=None):
        super().__init__()
        self.fixed = fixed

    def generate_keypair(self, privatekey=None):
        if privatekey is None and self.fixed is not None:
            privatekey, self.fixed = PrivateKey(self.fixed), None
        return super().generate_keypair(privatekey)


def keypair(priv):
    return X25519DH().generate_keypair(PrivateKey(priv))


def party(initiator, s, prologue, rs=None, e=None):
    hs = HandshakeState(SymmetricState(CipherState(ChaChaPolyCipher()), SHA256Hash()), FixedDH(e))
    hs.initialize(IKHandshakePattern(), initiator, prologue, s=s, rs=rs)
    assert hs.protocol_name == PROTOCOL, hs.protocol_name
    return hs


class Peer:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, b):
        self.p.stdin.write(struct.pack(">I", len(b)) + bytes(b))
        self.p.stdin.flush()

    def recv(self):
        hdr = self.p.stdout.read(4)
        if len(hdr) != 4:
            raise AssertionError("noise_peer closed its output (exit %s)" % self.p.wait())
        (n,) = struct.unpack(">I", hdr)
        b = self.p.stdout.read(n)
        if len(b) != n:
            raise AssertionError("noise_peer: short message")
        return b

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=30)
        if rc != 0:
            raise AssertionError("noise_peer exited %d" % rc)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def hx(b):
    return b.hex() if b else "-"


def transport(peer, send_cs, recv_cs, their_send_key):
    """ROUNDS messages each way; our ciphertexts compared byte for byte."""
    cipher = ChaChaPolyCipher()
    for i in range(ROUNDS):
        pt = os.urandom(i * 23)
        peer.send(send_cs.encrypt_with_ad(b"", pt))
        ct = peer.recv()
        want = cipher.encrypt(their_send_key, i, b"", b"echo:" + pt)
        check(ct == want, "transport %d: our ciphertext differs from dissononce's" % i)
        check(recv_cs.decrypt_with_ad(b"", ct) == b"echo:" + pt, "transport %d: plaintext" % i)


def ours_initiator(exe, fixed):
    i_s, r_s = os.urandom(32), os.urandom(32)
    i_kp, r_kp = keypair(i_s), keypair(r_s)
    e_i = os.urandom(32) if fixed else None
    prologue = b"natbroker interop " + os.urandom(8)
    payload0, payload1 = os.urandom(40), os.urandom(77)

    peer = Peer([exe, "initiator", i_s.hex(), r_kp.public.data.hex(), prologue.hex(), payload0.hex(),
                 hx(e_i), str(ROUNDS)])
    msg1 = peer.recv()
    if fixed:
        shadow, buf = party(True, i_kp, prologue, rs=r_kp.public, e=e_i), bytearray()
        shadow.write_message(payload0, buf)
        check(bytes(buf) == msg1, "msg1: our bytes differ from dissononce's")
    check(len(msg1) == 32 + 48 + len(payload0) + 16, "msg1 length")

    resp = party(False, r_kp, prologue)
    got = bytearray()
    check(resp.read_message(msg1, got) is None, "read msg1")
    check(bytes(got) == payload0, "msg1 payload")
    check(resp.rs.data == i_kp.public.data, "initiator static key")
    msg2 = bytearray()
    c_i2r, c_r2i = resp.write_message(payload1, msg2)
    peer.send(msg2)
    check(peer.recv() == payload1, "msg2 payload as we read it")
    check(peer.recv() == resp.symmetricstate.get_handshake_hash(), "handshake hash")
    # we are the initiator: we send with c_i2r's key, dissononce with c_r2i
    transport(peer, c_r2i, c_i2r, c_i2r._key)
    peer.close()


def ours_responder(exe, fixed):
    i_s, r_s = os.urandom(32), os.urandom(32)
    i_kp, r_kp = keypair(i_s), keypair(r_s)
    e_i, e_r = os.urandom(32), os.urandom(32) if fixed else None
    prologue = b"natbroker interop " + os.urandom(8)
    payload0, payload1 = os.urandom(200), os.urandom(3)

    peer = Peer([exe, "responder", r_s.hex(), prologue.hex(), payload1.hex(), hx(e_r), str(ROUNDS)])
    ini = party(True, i_kp, prologue, rs=r_kp.public, e=e_i)
    msg1 = bytearray()
    ini.write_message(payload0, msg1)
    peer.send(msg1)
    check(peer.recv() == payload0, "msg1 payload as we read it")
    check(peer.recv() == i_kp.public.data, "initiator static key as we read it")
    msg2 = peer.recv()
    if fixed:
        shadow = party(False, r_kp, prologue, e=e_r)
        shadow.read_message(bytes(msg1), bytearray())
        buf = bytearray()
        shadow.write_message(payload1, buf)
        check(bytes(buf) == msg2, "msg2: our bytes differ from dissononce's")
    got = bytearray()
    c_i2r, c_r2i = ini.read_message(msg2, got)
    check(bytes(got) == payload1, "msg2 payload")
    check(peer.recv() == ini.symmetricstate.get_handshake_hash(), "handshake hash")
    # we are the responder: we send with c_r2i's key, dissononce with c_i2r
    transport(peer, c_i2r, c_r2i, c_r2i._key)
    peer.close()


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    exe = sys.argv[1]
    cases = [("ours initiator, fixed ephemerals", ours_initiator, True),
             ("ours initiator, random ephemerals", ours_initiator, False),
             ("ours responder, fixed ephemerals", ours_responder, True),
             ("ours responder, random ephemerals", ours_responder, False)]
    passed = failed = 0
    for name, fn, fixed in cases:
        try:
            fn(exe, fixed)
            passed += 1
            print("ok: %s" % name)
        except Exception as e:  # report every case, then fail
            failed += 1
            print("FAIL: %s: %s" % (name, e))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
