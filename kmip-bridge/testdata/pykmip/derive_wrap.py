# Copyright The KES bridge authors.
# SPDX-License-Identifier: AGPL-3.0-only
"""Derive Key, wrapped Get and wrapped Register with PyKMIP's client.

Run by kmip-bridge/pykmip_test.go against the bridge. Usage:

    derive_wrap.py CONFIG_FILE KMIP_VERSION < kek-hex

CONFIG_FILE is a pykmip.conf with a [client] section. KMIP_VERSION is one
of 1.2, 1.3, 1.4. Standard input holds the hex of the 256-bit AES key the
script registers as wrapping key (Wrap Key and Unwrap Key usage): the Go
test knows it and unwraps what the server returns on its own.

The script unwraps what Get returns with the cryptography package's AES
key wrap (an implementation independent of the server's) and reports the
SHA-256 of the result. It also wraps a key itself with that package,
registers it wrapped, and reports the SHA-256 of what Get then returns.
Derived keys
are test vectors (RFC 6070, NIST CAVP), so their values are reported as
they are; no other key material is printed.

Every step is recorded, successful or not, in one JSON object printed to
standard output.
"""

import binascii
import hashlib
import json
import logging
import sys

from cryptography.hazmat.primitives import keywrap

from kmip import enums
from kmip.pie import client as pie_client
from kmip.pie import exceptions as pie_exceptions
from kmip.pie import objects as pie_objects

VERSIONS = {
    "1.0": enums.KMIPVersion.KMIP_1_0,
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.3": enums.KMIPVersion.KMIP_1_3,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}

# NIST CAVP KBKDF, KDFCTR_gen.rsp, [PRF=HMAC_SHA256]
# [CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS], COUNT=0.
CAVP_KI = "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0"
CAVP_FIXED = (
    "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b8"
    "64a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac"
)


def name(v):
    return getattr(v, "name", str(v))


class Recorder:
    """Collects one entry per step; a failed step records its error."""

    def __init__(self):
        self.steps = {}

    def run(self, step, fn):
        try:
            result = fn()
        except pie_exceptions.KmipOperationFailure as e:
            self.steps[step] = {
                "ok": False,
                "status": name(e.status),
                "reason": name(e.reason),
                "message": str(e.message),
            }
            return None
        except Exception as e:  # noqa: BLE001 - every failure is a result
            self.steps[step] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
            return None
        entry = {"ok": True}
        entry.update(result or {})
        self.steps[step] = entry
        return entry


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    config_file, version = sys.argv[1:]
    kek = binascii.unhexlify(sys.stdin.read().strip())
    logging.disable(logging.CRITICAL)  # PyKMIP logs request bodies at DEBUG
    rec = Recorder()
    uids = {}

    client = pie_client.ProxyKmipClient(config_file=config_file, kmip_version=VERSIONS[version])

    def register_kek():
        key = pie_objects.SymmetricKey(
            enums.CryptographicAlgorithm.AES, 256, kek,
            masks=[enums.CryptographicUsageMask.WRAP_KEY, enums.CryptographicUsageMask.UNWRAP_KEY],
        )
        uids["kek"] = client.register(key)
        client.activate(uids["kek"])
        return {"uid": uids["kek"]}

    def create_target():
        uids["target"] = client.create(
            enums.CryptographicAlgorithm.AES, 128,
            cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT],
        )
        return {"uid": uids["target"]}

    def get_wrapped(mode):
        def fn():
            obj = client.get(uids["target"], key_wrapping_specification={
                "wrapping_method": enums.WrappingMethod.ENCRYPT,
                "encryption_key_information": {
                    "unique_identifier": uids["kek"],
                    "cryptographic_parameters": {"block_cipher_mode": mode},
                },
                "encoding_option": enums.EncodingOption.NO_ENCODING,
            })
            kwd = obj.key_wrapping_data or {}
            # The cryptography package's unwrap, independent of the
            # server's and of the Go test's.
            if mode == enums.BlockCipherMode.NIST_KEY_WRAP:
                plain = keywrap.aes_key_unwrap(kek, obj.value)
            else:
                plain = keywrap.aes_key_unwrap_with_padding(kek, obj.value)
            eki = kwd.get("encryption_key_information") or {}
            params = eki.get("cryptographic_parameters") or {}
            return {
                "wrapped": binascii.hexlify(obj.value).decode(),
                "unwrapped_sha256": hashlib.sha256(plain).hexdigest(),
                "wrapping_method": name(kwd.get("wrapping_method")),
                "wrapping_key": eki.get("unique_identifier"),
                "mode": name(params.get("block_cipher_mode")),
                "encoding": name(kwd.get("encoding_option")),
            }
        return fn

    def get_wrapped_by_self():
        client.get(uids["kek"], key_wrapping_specification={
            "wrapping_method": enums.WrappingMethod.ENCRYPT,
            "encryption_key_information": {
                "unique_identifier": uids["kek"],
                "cryptographic_parameters": {"block_cipher_mode": enums.BlockCipherMode.NIST_KEY_WRAP},
            },
            "encoding_option": enums.EncodingOption.NO_ENCODING,
        })

    def register_wrapped(flip):
        def fn():
            secret = hashlib.sha256(b"pykmip wrapped register " + version.encode()).digest()
            wrapped = bytearray(keywrap.aes_key_wrap(kek, secret))
            if flip:
                wrapped[5] ^= 0x01
            key = pie_objects.SymmetricKey(
                enums.CryptographicAlgorithm.AES, 256, bytes(wrapped),
                masks=[enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT],
                key_wrapping_data={
                    "wrapping_method": enums.WrappingMethod.ENCRYPT,
                    "encryption_key_information": {
                        "unique_identifier": uids["kek"],
                        "cryptographic_parameters": {"block_cipher_mode": enums.BlockCipherMode.NIST_KEY_WRAP},
                    },
                    "encoding_option": enums.EncodingOption.NO_ENCODING,
                },
            )
            uid = client.register(key)
            # A key registered wrapped is Sensitive: Get in the clear is
            # refused (the Go test compares the stored material).
            try:
                client.get(uid)
            except pie_exceptions.KmipOperationFailure as e:
                refused = name(e.reason) == "PERMISSION_DENIED"
            else:
                refused = False
            return {"uid": uid, "clear_get_refused": refused}
        return fn

    def register_base(value, mask, data_type=enums.SecretDataType.PASSWORD):
        obj = pie_objects.SecretData(value, data_type, masks=[mask])
        uid = client.register(obj)
        client.activate(uid)
        return uid

    def derive(method, params, object_type, **kwargs):
        def fn():
            uid = client.derive_key(object_type, [uids["base_" + method.name]], method, params, **kwargs)
            got = client.get(uid)
            return {"uid": uid, "value": binascii.hexlify(got.value).decode()}
        return fn

    def bases():
        uids["base_PBKDF2"] = register_base(b"password", enums.CryptographicUsageMask.DERIVE_KEY)
        uids["base_NIST800_108_C"] = register_base(
            binascii.unhexlify(CAVP_KI), enums.CryptographicUsageMask.DERIVE_KEY, enums.SecretDataType.SEED)
        uids["base_HMAC"] = uids["base_PBKDF2"]
        return {}

    def derive_too_many_iterations():
        client.derive_key(
            enums.ObjectType.SECRET_DATA, [uids["base_PBKDF2"]], enums.DerivationMethod.PBKDF2,
            {"cryptographic_parameters": {"hashing_algorithm": enums.HashingAlgorithm.SHA_256},
             "salt": b"salt", "iteration_count": 2 ** 31 - 1},
            cryptographic_length=256,
        )

    try:
        client.open()
    except Exception as e:  # noqa: BLE001
        rec.steps["open"] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    else:
        rec.steps["open"] = {"ok": True}
        try:
            rec.run("register_kek", register_kek)
            rec.run("create_target", create_target)
            rec.run("get_wrapped_kw", get_wrapped(enums.BlockCipherMode.NIST_KEY_WRAP))
            rec.run("get_wrapped_kwp", get_wrapped(enums.BlockCipherMode.AES_KEY_WRAP_PADDING))
            rec.run("get_wrapped_by_self", get_wrapped_by_self)
            rec.run("register_wrapped", register_wrapped(False))
            rec.run("register_wrapped_tampered", register_wrapped(True))
            rec.run("bases", bases)
            rec.run("derive_pbkdf2", derive(
                enums.DerivationMethod.PBKDF2,
                {"cryptographic_parameters": {"hashing_algorithm": enums.HashingAlgorithm.SHA_1},
                 "salt": b"salt", "iteration_count": 4096},
                enums.ObjectType.SECRET_DATA, cryptographic_length=160))
            rec.run("derive_counter", derive(
                enums.DerivationMethod.NIST800_108_C,
                {"cryptographic_parameters": {"hashing_algorithm": enums.HashingAlgorithm.SHA_256},
                 "derivation_data": binascii.unhexlify(CAVP_FIXED)},
                enums.ObjectType.SYMMETRIC_KEY,
                cryptographic_algorithm=enums.CryptographicAlgorithm.AES, cryptographic_length=128))
            rec.run("derive_hmac", derive(
                enums.DerivationMethod.HMAC,
                {"cryptographic_parameters": {"hashing_algorithm": enums.HashingAlgorithm.SHA_256},
                 "derivation_data": b"context"},
                enums.ObjectType.SYMMETRIC_KEY,
                cryptographic_algorithm=enums.CryptographicAlgorithm.AES, cryptographic_length=256))
            rec.run("derive_too_many_iterations", derive_too_many_iterations)
        finally:
            client.close()

    json.dump({"version": version, "uids": uids, "steps": rec.steps}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
