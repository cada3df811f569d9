#!/usr/bin/env python3
"""Second, independent implementation of sealcast envelopes (v1, and v2 with
sender signatures), written from docs/envelope.md alone with Python's
`cryptography` package, checked against docs/envelope-vectors.json. It seals
every positive vector (must reproduce the envelope exactly), opens it,
re-derives every HKDF key, seals and signs every signed vector (Ed25519 is
deterministic: exact bytes again), and opens every negative vector (must fail
with the published error code).

Usage: python3 scripts/verify_vectors.py [docs/envelope-vectors.json]
"""
import base64
import hashlib
import hmac
import json
import re
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FIELDS = ["v", "alg", "kid", "kv", "iv", "ct", "kc"]
FIELDS_SIGNED = FIELDS + ["sdr", "sig"]
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class EnvelopeError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def b64d(text, field):
    if not isinstance(text, str) or not B64URL.match(text) or len(text) % 4 == 1:
        raise EnvelopeError("invalid_base64")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64e(raw) != text:  # canonical: no stray trailing bits
        raise EnvelopeError("invalid_base64")
    return raw


def b64e(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def lp(data):
    return struct.pack(">I", len(data)) + data


def scope_fields(scope):
    kind, rest = scope.split(":", 1)
    arity = {"chat": 2, "call": 2, "custom": 3, "doc": 3}[kind]
    return kind, rest.split(":", arity - 1)


def aad(kid, kv, scope, path, sdr=None):
    kind, fields = scope_fields(scope)
    version = 1 if sdr is None else 2
    out = lp(b"sealcast/envelope") + bytes([version]) + lp(b"A256GCM") + lp(kid.encode())
    out += struct.pack(">I", kv) + lp(kind.encode()) + bytes([len(fields)])
    for field in fields:
        out += lp(field.encode())
    out += lp(path.encode())
    return out if sdr is None else out + lp(sdr)


def signer_id(public):
    return hashlib.sha256(b"sealcast/v2/signer" + public).digest()[:16]


def signed_bytes(aad_bytes, iv, ct, kc):
    return lp(b"sealcast/envelope-signature") + lp(aad_bytes) + iv + lp(ct) + kc


def commitment(key, iv):
    return hmac.new(key, b"sealcast/v1/commit" + iv, hashlib.sha256).digest()


def derive(master, purpose, ident, salt):
    info = lp(b"sealcast/kdf/v1") + lp(purpose.encode()) + lp(ident.encode())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt.encode(), info=info).derive(master)


def seal(key, kid, kv, scope, path, plaintext_utf8, iv):
    ct = AESGCM(key).encrypt(iv, plaintext_utf8.encode(), aad(kid, kv, scope, path))
    return {"v": 1, "alg": "A256GCM", "kid": kid, "kv": kv, "iv": b64e(iv), "ct": b64e(ct), "kc": b64e(commitment(key, iv))}


def seal_signed(key, kid, kv, scope, path, plaintext_utf8, iv, seed):
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes_raw()
    sdr = signer_id(public)
    a = aad(kid, kv, scope, path, sdr)
    ct = AESGCM(key).encrypt(iv, plaintext_utf8.encode(), a)
    kc = commitment(key, iv)
    sig = private.sign(signed_bytes(a, iv, ct, kc))
    return {"v": 2, "alg": "A256GCM", "kid": kid, "kv": kv, "iv": b64e(iv), "ct": b64e(ct), "kc": b64e(kc),
            "sdr": b64e(sdr), "sig": b64e(sig)}


def open_envelope(ring, scope, path, env, signers=None, required=False):
    """signers: the public keys that may sign (None: signed envelopes cannot
    be checked, so they do not open); required: unsigned ones are refused."""
    if not isinstance(env, dict) or "v" not in env:
        raise EnvelopeError("malformed_envelope")
    if type(env["v"]) is not int or env["v"] < 0:
        raise EnvelopeError("malformed_envelope")
    if env["v"] not in (1, 2):
        raise EnvelopeError("unsupported_version")
    signed = env["v"] == 2
    if sorted(env) != sorted(FIELDS_SIGNED if signed else FIELDS):
        raise EnvelopeError("malformed_envelope")
    if not all(isinstance(env[f], str) for f in ("alg", "kid", "iv", "ct", "kc")):
        raise EnvelopeError("malformed_envelope")
    if env["alg"] != "A256GCM":
        raise EnvelopeError("unsupported_algorithm")
    kv = env["kv"]
    if type(kv) is not int or not 0 <= kv <= 0xFFFFFFFF:
        raise EnvelopeError("malformed_envelope")
    if len(env["iv"]) != 16 or len(env["kc"]) != 43:
        raise EnvelopeError("malformed_envelope")
    if signed and (not all(isinstance(env[f], str) for f in ("sdr", "sig")) or len(env["sdr"]) != 22 or len(env["sig"]) != 86):
        raise EnvelopeError("malformed_envelope")
    iv, kc, ct = b64d(env["iv"], "iv"), b64d(env["kc"], "kc"), b64d(env["ct"], "ct")
    sdr = b64d(env["sdr"], "sdr") if signed else None
    sig = b64d(env["sig"], "sig") if signed else None
    if len(ct) < 16:
        raise EnvelopeError("malformed_envelope")
    key = ring.get((env["kid"], kv))
    if key is None:
        raise EnvelopeError("unknown_key")
    if not signed and required:
        raise EnvelopeError("signature_required")
    if not hmac.compare_digest(commitment(key, iv), kc):
        raise EnvelopeError("commitment_mismatch")
    a = aad(env["kid"], kv, scope, path, sdr)
    if signed:
        public = next((p for p in (signers or []) if signer_id(p) == sdr), None)
        if public is None:
            raise EnvelopeError("unknown_signer")
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(sig, signed_bytes(a, iv, ct, kc))
        except InvalidSignature:
            raise EnvelopeError("signature_invalid")
    try:
        plaintext = AESGCM(key).decrypt(iv, ct, a)
    except Exception:
        raise EnvelopeError("decrypt_failed")
    try:
        return json.loads(plaintext.decode("utf-8"))
    except Exception:
        raise EnvelopeError("invalid_plaintext")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/envelope-vectors.json"
    vectors = json.load(open(path, encoding="utf-8"))
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL:", what)

    for v in vectors["positive"]:
        key = b64d(v["key"], "key")
        if "derived_from" in v:
            d = v["derived_from"]
            check(derive(b64d(d["master"], "key"), d["purpose"], d["id"], d["salt"]) == key, v["name"] + " derivation")
        check(aad(v["kid"], v["kv"], v["scope"], v["path"]).hex() == v["aad_hex"], v["name"] + " aad")
        env = seal(key, v["kid"], v["kv"], v["scope"], v["path"], v["plaintext_utf8"], b64d(v["iv"], "iv"))
        check(env == v["envelope"], v["name"] + " seal")
        opened = open_envelope({(v["kid"], v["kv"]): key}, v["scope"], v["path"], v["envelope"])
        check(opened == v["plaintext"], v["name"] + " open")
    for d in vectors["derivations"]:
        check(b64e(derive(b64d(d["master"], "key"), d["purpose"], d["id"], d["salt"])) == d["key"], "derivation " + d["id"])
    for v in vectors["negative"]:
        ring = {(v["kid"], v["kv"]): b64d(v["key"], "key")}
        try:
            open_envelope(ring, v["scope"], v["path"], v["envelope"])
            check(False, v["name"] + " opened but must fail")
        except EnvelopeError as err:
            check(err.code == v["error"], f'{v["name"]}: got {err.code}, want {v["error"]}')
    for v in vectors["signed"]:
        key, iv, seed = b64d(v["key"], "key"), b64d(v["iv"], "iv"), b64d(v["signer_seed"], "seed")
        sdr = b64d(v["sdr"], "sdr")
        check(aad(v["kid"], v["kv"], v["scope"], v["path"], sdr).hex() == v["aad_hex"], v["name"] + " aad")
        env = seal_signed(key, v["kid"], v["kv"], v["scope"], v["path"], v["plaintext_utf8"], iv, seed)
        check(env == v["envelope"], v["name"] + " seal and sign")
        signers = [b64d(v["signer_public"], "public")]
        opened = open_envelope({(v["kid"], v["kv"]): key}, v["scope"], v["path"], v["envelope"], signers, True)
        check(opened == v["plaintext"], v["name"] + " open")
        try:
            open_envelope({(v["kid"], v["kv"]): key}, v["scope"], v["path"], v["envelope"])
            check(False, v["name"] + " opened without its signers")
        except EnvelopeError as err:
            check(err.code == "unknown_signer", v["name"] + " without signers: " + err.code)
    for v in vectors["signed_negative"]:
        ring = {(v["kid"], v["kv"]): b64d(v["key"], "key")}
        signers = [b64d(k, "public") for k in v["signers"]]
        try:
            open_envelope(ring, v["scope"], v["path"], v["envelope"], signers, v["signatures_required"])
            check(False, v["name"] + " opened but must fail")
        except EnvelopeError as err:
            check(err.code == v["error"], f'{v["name"]}: got {err.code}, want {v["error"]}')
    print(f"envelope vectors (python cryptography): {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
