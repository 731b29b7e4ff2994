# Copyright The KES bridge authors.
# SPDX-License-Identifier: AGPL-3.0-only
"""Symmetric-key lifecycle over KMIP with PyKMIP's ProxyKmipClient.

Run by kmip-bridge/pykmip_test.go against the bridge. Usage:

    lifecycle.py CONFIG_FILE KMIP_VERSION NAME_PREFIX KES_KEY < register-key-hex

CONFIG_FILE is a pykmip.conf with a [client] section (host, port, certfile,
keyfile, ca_certs, ...). KMIP_VERSION is one of 1.0, 1.1, 1.2, 1.3, 1.4, 2.0 (at 2.0 PyKMIP
encodes attributes the KMIP 2.0 way: Attributes, Attribute Reference).
NAME_PREFIX makes the names of the keys created here unique. KES_KEY is
the Unique Identifier of a key created over the KES API, which is only
used: Get of it must be refused (it is not extractable), Encrypt, Decrypt
and MAC with it must work, Revoke and Destroy of it must be refused. Standard input holds the hex of the 256-bit AES key to Register.

Besides the named keys that go through the whole lifecycle, the script
creates one key the way vCenter does (no Name) and leaves it in place, so
that the caller can compare its material with what the server stores.

Every step is recorded, successful or not, in one JSON object printed to
standard output, so the Go test can say which step failed. Key material is
never printed: the script reports SHA-256 digests of what Get returned.
"""

import binascii
import enum
import hashlib
import json
import logging
import os
import sys

from kmip import enums
from kmip.core import objects as cobjects
from kmip.core.factories import attributes as attribute_factory
from kmip.pie import client as pie_client
from kmip.pie import exceptions as pie_exceptions
from kmip.pie import objects as pie_objects

VERSIONS = {
    "1.0": enums.KMIPVersion.KMIP_1_0,
    "1.1": enums.KMIPVersion.KMIP_1_1,
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.3": enums.KMIPVersion.KMIP_1_3,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}


def enum_name(v):
    """Text form of a value: enum member names, else str()."""
    if isinstance(v, enum.Enum):
        return v.name
    value = getattr(v, "value", v)  # PyKMIP primitives wrap their value
    if isinstance(value, enum.Enum):
        return value.name
    if hasattr(v, "name_value"):  # Name structure
        return str(v.name_value.value)
    return str(value)


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
                "status": enum_name(e.status),
                "reason": enum_name(e.reason),
                "message": str(e.message),
            }
            return None
        except Exception as e:  # noqa: BLE001 - every failure is a result
            self.steps[step] = {
                "ok": False,
                "error": "%s: %s" % (type(e).__name__, e),
            }
            return None
        entry = {"ok": True}
        if result is not None:
            entry.update(result)
        self.steps[step] = entry
        return entry


def main():
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    config_file, version, prefix, kes_key = sys.argv[1:]
    register_key = binascii.unhexlify(sys.stdin.read().strip())
    logging.disable(logging.CRITICAL)  # PyKMIP logs request bodies at DEBUG

    factory = attribute_factory.AttributeFactory()
    rec = Recorder()
    created_name = prefix + "-created"
    registered_name = prefix + "-registered"
    uids = {}

    def state(uid):
        _, attrs = client.get_attributes(uid, ["State"])
        for a in attrs:
            if a.attribute_name.value == "State":
                return enum_name(a.attribute_value)
        return None

    def get(uid):
        obj = client.get(uid)
        return {
            "object_type": enum_name(obj.object_type),
            "algorithm": enum_name(obj.cryptographic_algorithm),
            "length": obj.cryptographic_length,
            "material_sha256": hashlib.sha256(obj.value).hexdigest(),
        }

    def check_result(result):
        status = enum_name(result.result_status)
        if status != "SUCCESS":
            raise pie_exceptions.KmipOperationFailure(
                result.result_status.value,
                result.result_reason.value,
                result.result_message.value,
            )

    def discover_versions():
        result = client.proxy.discover_versions()
        check_result(result)
        return {
            "versions": [
                "%d.%d" % (v.major, v.minor)
                for v in (result.protocol_versions or [])
            ]
        }

    def query():
        result = client.proxy.query(
            query_functions=[
                enums.QueryFunction.QUERY_OPERATIONS,
                enums.QueryFunction.QUERY_OBJECTS,
                enums.QueryFunction.QUERY_SERVER_INFORMATION,
            ]
        )
        check_result(result)
        return {
            "operations": [enum_name(o) for o in (result.operations or [])],
            "object_types": [
                enum_name(o) for o in (result.object_types or [])
            ],
            "vendor": enum_name(result.vendor_identification),
        }

    def create():
        uids["created"] = client.create(
            enums.CryptographicAlgorithm.AES,
            256,
            name=created_name,
            cryptographic_usage_mask=[
                enums.CryptographicUsageMask.ENCRYPT,
                enums.CryptographicUsageMask.DECRYPT,
            ],
        )
        return {"uid": uids["created"]}

    def create_kept():
        uids["kept"] = client.create(
            enums.CryptographicAlgorithm.AES,
            256,
            cryptographic_usage_mask=[
                enums.CryptographicUsageMask.ENCRYPT,
                enums.CryptographicUsageMask.DECRYPT,
            ],
        )
        return {"uid": uids["kept"]}

    def register():
        key = pie_objects.SymmetricKey(
            enums.CryptographicAlgorithm.AES,
            256,
            register_key,
            masks=[
                enums.CryptographicUsageMask.ENCRYPT,
                enums.CryptographicUsageMask.DECRYPT,
            ],
            name=registered_name,
        )
        uids["registered"] = client.register(key)
        return {"uid": uids["registered"]}

    def get_attributes():
        uid, attrs = client.get_attributes(
            uids["created"],
            [
                "Object Type",
                "Cryptographic Algorithm",
                "Cryptographic Length",
                "Cryptographic Usage Mask",
                "State",
                "Name",
            ],
        )
        out = {}
        for a in attrs:
            out[a.attribute_name.value] = enum_name(a.attribute_value)
        return {"uid": uid, "attributes": out}

    def locate(name):
        attr = factory.create_attribute(enums.AttributeType.NAME, name)
        return {"uids": list(client.locate(attributes=[attr]))}

    def locate_type():
        attr = factory.create_attribute(
            enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY
        )
        return {"uids": list(client.locate(attributes=[attr]))}

    def activate():
        client.activate(uids["created"])
        return {"state": state(uids["created"])}

    def destroy_active():
        client.destroy(uids["created"])
        return None

    def revoke():
        client.revoke(
            enums.RevocationReasonCode.CESSATION_OF_OPERATION,
            uids["created"],
            revocation_message="pykmip interop",
        )
        return {"state": state(uids["created"])}

    def destroy(which):
        client.destroy(uids[which])
        return None

    message = b"pykmip interop message"
    cbc = {
        "cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
        "block_cipher_mode": enums.BlockCipherMode.CBC,
        "padding_method": enums.PaddingMethod.PKCS5,
    }
    sealed = {}

    def encrypt_kes():
        iv = os.urandom(16)
        ct, _ = client.encrypt(
            message, uid=kes_key, cryptographic_parameters=cbc,
            iv_counter_nonce=iv)
        sealed["ct"], sealed["iv"] = ct, iv
        return {"ciphertext": binascii.hexlify(ct).decode(),
                "iv": binascii.hexlify(iv).decode()}

    def decrypt_kes():
        pt = client.decrypt(
            sealed["ct"], uid=kes_key, cryptographic_parameters=cbc,
            iv_counter_nonce=sealed["iv"])
        return {"match": pt == message}

    def decrypt_tampered():
        # The 22-byte message pads with ten 0x0a bytes; flipping the
        # first block turns the last plaintext byte into 0x11, which is
        # no PKCS#5 padding, whatever the key.
        ct = bytearray(sealed["ct"])
        ct[15] ^= 0x0a ^ 0x11
        client.decrypt(
            bytes(ct), uid=kes_key, cryptographic_parameters=cbc,
            iv_counter_nonce=sealed["iv"])
        return None

    def mac_kes():
        _, mac = client.mac(
            message, uid=kes_key,
            algorithm=enums.CryptographicAlgorithm.HMAC_SHA256)
        return {"mac": binascii.hexlify(mac).decode()}

    def revoke_kes():
        client.revoke(
            enums.RevocationReasonCode.KEY_COMPROMISE, kes_key,
            revocation_message="pykmip interop")
        return None

    client = pie_client.ProxyKmipClient(
        config="client",
        config_file=config_file,
        kmip_version=VERSIONS[version],
    )
    opened = rec.run("open", lambda: client.open())
    if opened is not None:
        steps = [
            ("discover_versions", discover_versions),
            ("query", query),
            ("create", create),
            ("create_kept", create_kept),
            ("register", register),
            ("get_kept", lambda: get(uids["kept"])),
            ("get_kes", lambda: get(kes_key)),
            ("encrypt_kes", encrypt_kes),
            ("decrypt_kes", decrypt_kes),
            ("decrypt_tampered", decrypt_tampered),
            ("mac_kes", mac_kes),
            ("revoke_kes", revoke_kes),
            ("destroy_kes", lambda: client.destroy(kes_key)),
            ("get_created", lambda: get(uids["created"])),
            ("get_registered", lambda: get(uids["registered"])),
            ("get_attributes", get_attributes),
            ("locate_created", lambda: locate(created_name)),
            ("locate_registered", lambda: locate(registered_name)),
            ("locate_missing", lambda: locate(prefix + "-missing")),
            ("locate_type", locate_type),
            ("activate", activate),
            ("destroy_active", destroy_active),
            ("revoke", revoke),
            ("destroy_created", lambda: destroy("created")),
            ("destroy_registered", lambda: destroy("registered")),
            ("get_destroyed", lambda: get(uids["created"])),
        ]
        for name, fn in steps:
            rec.run(name, fn)
        client.close()
    json.dump({"version": version, "uids": uids, "steps": rec.steps},
              sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
