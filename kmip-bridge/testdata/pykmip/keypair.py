# Copyright The KES bridge authors.
# SPDX-License-Identifier: AGPL-3.0-only
"""RSA key-pair lifecycle and signatures over KMIP with PyKMIP.

Run by kmip-bridge/pykmip_test.go against the bridge. Usage:

    keypair.py CONFIG_FILE KMIP_VERSION NAME_PREFIX

CONFIG_FILE is a pykmip.conf with a [client] section. KMIP_VERSION is one
of 1.0, 1.1, 1.2, 1.3, 1.4. NAME_PREFIX makes the key names unique.

The script creates an RSA-2048 pair, reads both halves and their
attributes, activates them, signs with the private key (PSS and PKCS#1
v1.5, SHA-256) and verifies with the public key (the signature, and a
tampered message), then revokes and destroys both halves in turn.

Every step is recorded in one JSON object on standard output, as
lifecycle.py does. The public key and the signatures are printed in hex
(neither is secret) so that the Go test can check them with crypto/rsa;
of the private key only a SHA-256 digest is printed.
"""

import binascii
import enum
import hashlib
import json
import logging
import sys

from kmip import enums
from kmip.core.factories import attributes as attribute_factory
from kmip.pie import client as pie_client
from kmip.pie import exceptions as pie_exceptions

VERSIONS = {
    "1.0": enums.KMIPVersion.KMIP_1_0,
    "1.1": enums.KMIPVersion.KMIP_1_1,
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.3": enums.KMIPVersion.KMIP_1_3,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}

MESSAGE = b"pykmip key pair interop message"


def enum_name(v):
    """Text form of a value: enum member names, else str()."""
    if isinstance(v, enum.Enum):
        return v.name
    value = getattr(v, "value", v)
    if isinstance(value, enum.Enum):
        return value.name
    if hasattr(v, "name_value"):
        return str(v.name_value.value)
    if hasattr(v, "linked_object_identifier"):  # Link structure
        return "%s:%s" % (enum_name(v.link_type),
                          enum_name(v.linked_object_identifier))
    return str(value)


def run(steps, step, fn):
    """Runs one step and records its result or its failure."""
    try:
        result = fn()
    except pie_exceptions.KmipOperationFailure as e:
        steps[step] = {"ok": False, "status": enum_name(e.status),
                       "reason": enum_name(e.reason),
                       "message": str(e.message)}
        return
    except Exception as e:  # noqa: BLE001 - every failure is a result
        steps[step] = {"ok": False,
                       "error": "%s: %s" % (type(e).__name__, e)}
        return
    entry = {"ok": True}
    if result is not None:
        entry.update(result)
    steps[step] = entry


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    config_file, version, prefix = sys.argv[1:]
    logging.disable(logging.CRITICAL)  # PyKMIP logs request bodies at DEBUG

    factory = attribute_factory.AttributeFactory()
    steps = {}
    uids = {}
    sigs = {}
    client = pie_client.ProxyKmipClient(
        config="client", config_file=config_file,
        kmip_version=VERSIONS[version])

    def create():
        pub, priv = client.create_key_pair(
            enums.CryptographicAlgorithm.RSA, 2048,
            public_name=prefix + "-public",
            public_usage_mask=[enums.CryptographicUsageMask.VERIFY],
            private_name=prefix + "-private",
            private_usage_mask=[enums.CryptographicUsageMask.SIGN])
        uids["public"], uids["private"] = pub, priv
        return {"uids": [priv, pub]}

    def get(which):
        obj = client.get(uids[which])
        out = {
            "object_type": enum_name(obj.object_type),
            "algorithm": enum_name(obj.cryptographic_algorithm),
            "length": obj.cryptographic_length,
            "format": enum_name(obj.key_format_type),
            "material_sha256": hashlib.sha256(obj.value).hexdigest(),
        }
        if which == "public":
            out["material"] = binascii.hexlify(obj.value).decode()
        return out

    def attributes(which):
        # Not Link: PyKMIP 0.10 cannot decode Link attributes
        # (NotImplementedError); the Go tests check the links.
        _, attrs = client.get_attributes(
            uids[which],
            ["Object Type", "Cryptographic Algorithm", "Cryptographic Length",
             "Cryptographic Usage Mask", "State", "Name"])
        return {"attributes": {a.attribute_name.value:
                               enum_name(a.attribute_value) for a in attrs}}

    def locate(which):
        name = factory.create_attribute(
            enums.AttributeType.NAME, prefix + "-" + which)
        return {"uids": list(client.locate(attributes=[name]))}

    def params(padding):
        return {"cryptographic_algorithm": enums.CryptographicAlgorithm.RSA,
                "hashing_algorithm": enums.HashingAlgorithm.SHA_256,
                "padding_method": padding}

    def sign(name, padding):
        sig = client.sign(MESSAGE, uid=uids["private"],
                          cryptographic_parameters=params(padding))
        sigs[name] = (sig, padding)
        return {"mac": binascii.hexlify(sig).decode()}

    def verify(name, message):
        sig, padding = sigs[name]
        v = client.signature_verify(message, sig, uid=uids["public"],
                                    cryptographic_parameters=params(padding))
        return {"state": enum_name(v)}

    def state(which):
        _, attrs = client.get_attributes(uids[which], ["State"])
        return {"state": enum_name(attrs[0].attribute_value)}

    def revoke(which):
        client.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION,
                      uids[which])
        return state(which)

    run(steps, "open", client.open)
    if steps["open"]["ok"]:
        pss, pkcs1 = enums.PaddingMethod.PSS, enums.PaddingMethod.PKCS1v15
        for name, fn in [
            ("create", create),
            ("get_public", lambda: get("public")),
            ("get_private", lambda: get("private")),
            ("attributes_public", lambda: attributes("public")),
            ("attributes_private", lambda: attributes("private")),
            ("locate_public", lambda: locate("public")),
            ("locate_private", lambda: locate("private")),
            ("sign_preactive", lambda: sign("preactive", pss)),
            ("activate_private", lambda: client.activate(uids["private"])),
            ("activate_public", lambda: client.activate(uids["public"])),
            ("sign_pss", lambda: sign("pss", pss)),
            ("sign_pkcs1", lambda: sign("pkcs1", pkcs1)),
            ("verify_pss", lambda: verify("pss", MESSAGE)),
            ("verify_pkcs1", lambda: verify("pkcs1", MESSAGE)),
            ("verify_tampered", lambda: verify("pss", MESSAGE + b"!")),
            ("sign_with_public", lambda: client.sign(
                MESSAGE, uid=uids["public"],
                cryptographic_parameters=params(pss))),
            ("destroy_active", lambda: client.destroy(uids["public"])),
            ("revoke_public", lambda: revoke("public")),
            ("destroy_public", lambda: client.destroy(uids["public"])),
            ("state_private", lambda: state("private")),
            ("revoke_private", lambda: revoke("private")),
            ("destroy_private", lambda: client.destroy(uids["private"])),
            ("get_destroyed", lambda: get("private")),
        ]:
            run(steps, name, fn)
        client.close()
    json.dump({"version": version, "uids": uids, "steps": steps},
              sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
