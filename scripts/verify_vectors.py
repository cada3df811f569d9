#!/usr/bin/env python3
"""Second, independent implementation of sealcast envelope v1, written from
docs/envelope.md alone with Python's `cryptography` package, checked against
docs/envelope-vectors.json. It seals every positive vector (must reproduce
the envelope exactly), opens it, re-derives every HKDF key, and opens every
negative vector (must fail with the published error code).

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
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FIELDS = ["v", "alg", "kid", "kv", "iv", "ct", "kc"]
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


def aad(kid, kv, scope, path):
    kind, fields = scope_fields(scope)
    out = lp(b"sealcast/envelope") + bytes([1]) + lp(b"A256GCM") + lp(kid.encode())
    out += struct.pack(">I", kv) + lp(kind.encode()) + bytes([len(fields)])
    for field in fields:
        out += lp(field.encode())
    return out + lp(path.encode())


def commitment(key, iv):
    return hmac.new(key, b"sealcast/v1/commit" + iv, hashlib.sha256).digest()


def derive(master, purpose, ident, salt):
    info = lp(b"sealcast/kdf/v1") + lp(purpose.encode()) + lp(ident.encode())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt.encode(), info=info).derive(master)


def seal(key, kid, kv, scope, path, plaintext_utf8, iv):
    ct = AESGCM(key).encrypt(iv, plaintext_utf8.encode(), aad(kid, kv, scope, path))
    return {"v": 1, "alg": "A256GCM", "kid": kid, "kv": kv, "iv": b64e(iv), "ct": b64e(ct), "kc": b64e(commitment(key, iv))}


def open_envelope(ring, scope, path, env):
    if not isinstance(env, dict) or "v" not in env:
        raise EnvelopeError("malformed_envelope")
    if type(env["v"]) is not int or env["v"] < 0:
        raise EnvelopeError("malformed_envelope")
    if env["v"] != 1:
        raise EnvelopeError("unsupported_version")
    if sorted(env) != sorted(FIELDS):
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
    iv, kc, ct = b64d(env["iv"], "iv"), b64d(env["kc"], "kc"), b64d(env["ct"], "ct")
    if len(ct) < 16:
        raise EnvelopeError("malformed_envelope")
    key = ring.get((env["kid"], kv))
    if key is None:
        raise EnvelopeError("unknown_key")
    if not hmac.compare_digest(commitment(key, iv), kc):
        raise EnvelopeError("commitment_mismatch")
    try:
        plaintext = AESGCM(key).decrypt(iv, ct, aad(env["kid"], kv, scope, path))
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
    print(f"envelope vectors (python cryptography): {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
