# Copyright The KES bridge authors.
# SPDX-License-Identifier: AGPL-3.0-only
"""A symmetric key's life over KMIP with PyKMIP, against the KES bridge.

Usage:

    pykmip-example.py CONFIG_FILE HOST:PORT [KMIP_VERSION]

CONFIG_FILE is a pykmip.conf with a [client] section (certfile, keyfile,
ca_certs, ...); HOST:PORT is the bridge's KMIP address; KMIP_VERSION is
1.0 to 1.4 (default 1.4), or 2.0 once the bridge speaks KMIP 2.

The script creates a named AES-256 key, activates it, finds it by name,
reads its attributes, encrypts and decrypts with it on the server (KMIP
1.2 and later), fetches it, revokes it and destroys it. It prints one line
per step and exits with status 1 at the first step that fails. It never
prints key material, only a SHA-256 digest of what Get returned.
"""

import binascii
import hashlib
import logging
import os
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


def step(name, fn):
    """Runs one step, prints its outcome, and stops the script if it
    fails."""
    try:
        detail = fn()
    except pie_exceptions.KmipOperationFailure as e:
        print("%-18s FAILED: %s: %s" % (name, e.reason, e.message))
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - any failure ends the example
        print("%-18s FAILED: %s: %s" % (name, type(e).__name__, e))
        sys.exit(1)
    print(("%-18s ok  %s" % (name, detail or "")).rstrip())


def main():
    if len(sys.argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    config_file, address = sys.argv[1], sys.argv[2]
    version = sys.argv[3] if len(sys.argv) == 4 else "1.4"
    if version not in VERSIONS:
        sys.stderr.write("unknown KMIP version %s\n" % version)
        return 2
    host, _, port = address.rpartition(":")
    # PyKMIP logs whole requests, key material included, at DEBUG.
    logging.disable(logging.CRITICAL)

    client = pie_client.ProxyKmipClient(
        hostname=host,
        port=int(port),
        config="client",
        config_file=config_file,
        kmip_version=VERSIONS[version],
    )
    # A new name for every run, so that Locate finds this run's key only.
    name = "pykmip-example-" + binascii.hexlify(os.urandom(4)).decode()
    factory = attribute_factory.AttributeFactory()
    key = {}

    def state():
        _, attrs = client.get_attributes(key["uid"], ["State"])
        return [a.attribute_value for a in attrs][0]

    def create():
        key["uid"] = client.create(
            enums.CryptographicAlgorithm.AES,
            256,
            name=name,
            cryptographic_usage_mask=[
                enums.CryptographicUsageMask.ENCRYPT,
                enums.CryptographicUsageMask.DECRYPT,
            ],
        )
        return "%s (name %s), %s" % (key["uid"], name, state())

    def activate():
        client.activate(key["uid"])
        return state()

    def locate():
        found = client.locate(
            attributes=[factory.create_attribute(enums.AttributeType.NAME, name)])
        if found != [key["uid"]]:
            raise RuntimeError("Locate by name found %s" % found)
        return "by name: %s" % found

    def get_attributes():
        _, attrs = client.get_attributes(
            key["uid"],
            ["Cryptographic Algorithm", "Cryptographic Length", "State"])
        return ", ".join(
            "%s=%s" % (a.attribute_name.value, a.attribute_value)
            for a in attrs)

    message = b"a message for the KMIP server"
    cbc = {
        "cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
        "block_cipher_mode": enums.BlockCipherMode.CBC,
        "padding_method": enums.PaddingMethod.PKCS5,
    }

    def encrypt_decrypt():
        iv = os.urandom(16)
        ciphertext, _ = client.encrypt(
            message, uid=key["uid"], cryptographic_parameters=cbc,
            iv_counter_nonce=iv)
        plaintext = client.decrypt(
            ciphertext, uid=key["uid"], cryptographic_parameters=cbc,
            iv_counter_nonce=iv)
        if plaintext != message:
            raise RuntimeError("Decrypt returned another message")
        return "AES-CBC, %d bytes of ciphertext, round trip matches" % len(ciphertext)

    def get():
        obj = client.get(key["uid"])
        return "%s, %d bits, SHA-256 of the key %s" % (
            obj.cryptographic_algorithm, obj.cryptographic_length,
            hashlib.sha256(obj.value).hexdigest()[:16] + "...")

    def revoke():
        client.revoke(
            enums.RevocationReasonCode.CESSATION_OF_OPERATION, key["uid"])
        return state()

    step("open", lambda: client.open() or "KMIP %s" % version)
    try:
        step("create", create)
        step("activate", activate)
        step("locate", locate)
        step("get attributes", get_attributes)
        if version >= "1.2":  # Encrypt and Decrypt are KMIP 1.2 operations
            step("encrypt, decrypt", encrypt_decrypt)
        step("get", get)
        step("revoke", revoke)
        step("destroy", lambda: client.destroy(key["uid"]))
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
