# Copyright The KES bridge authors.
# SPDX-License-Identifier: AGPL-3.0-only
"""Register, get, locate and destroy an X.509 certificate with PyKMIP.

Run by kmip-bridge/pykmip_cert_test.go against the bridge. Usage:

    certificate.py CONFIG_FILE KMIP_VERSION NAME < certificate-der-hex

CONFIG_FILE is a pykmip.conf with a [client] section. KMIP_VERSION is one
of 1.0 to 1.4. NAME is the Name the certificate is registered with.

Every step is recorded in one JSON object printed to standard output, as
lifecycle.py does. The certificate is public; the script still reports
only the SHA-256 of what Get returned.
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
from kmip.pie import objects as pie_objects

VERSIONS = {
    "1.0": enums.KMIPVersion.KMIP_1_0,
    "1.1": enums.KMIPVersion.KMIP_1_1,
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.3": enums.KMIPVersion.KMIP_1_3,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}


def text(v):
    """Text form of a value: enum member names, else str()."""
    if isinstance(v, enum.Enum):
        return v.name
    value = getattr(v, "value", v)  # PyKMIP primitives wrap their value
    if isinstance(value, enum.Enum):
        return value.name
    return str(value)


def run(steps, step, fn):
    """Runs one step and records its result or failure."""
    try:
        result = fn()
    except pie_exceptions.KmipOperationFailure as e:
        steps[step] = {"ok": False, "status": text(e.status),
                       "reason": text(e.reason), "message": str(e.message)}
        return None
    except Exception as e:  # noqa: BLE001 - every failure is a result
        steps[step] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        return None
    entry = {"ok": True}
    entry.update(result or {})
    steps[step] = entry
    return entry


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    config_file, version, name = sys.argv[1:]
    der = binascii.unhexlify(sys.stdin.read().strip())
    logging.disable(logging.CRITICAL)

    factory = attribute_factory.AttributeFactory()
    steps = {}
    uids = {}
    client = pie_client.ProxyKmipClient(
        config="client", config_file=config_file,
        kmip_version=VERSIONS[version])

    def register():
        cert = pie_objects.X509Certificate(
            der, masks=[enums.CryptographicUsageMask.VERIFY], name=name)
        uids["cert"] = client.register(cert)
        return {"uid": uids["cert"]}

    def get():
        obj = client.get(uids["cert"])
        return {"object_type": text(obj.object_type),
                "material_sha256": hashlib.sha256(obj.value).hexdigest()}

    def get_attributes():
        # PyKMIP decodes none of the X.509 and 1.0 name attributes
        # (NotImplementedError in its value factory): ask for the ones
        # it reads.
        names = ["Object Type", "Certificate Type", "Certificate Length",
                 "Cryptographic Algorithm", "Cryptographic Length"]
        if version == "2.0":
            # At 2.0 PyKMIP reads the reply's Attributes structure by
            # tag, and its create_attribute_value_by_enum raises
            # NotImplementedError for Certificate Type
            # (kmip/core/factories/attribute_values.py).
            names.remove("Certificate Type")
        _, attrs = client.get_attributes(uids["cert"], names)
        return {"attributes": {a.attribute_name.value: text(a.attribute_value)
                               for a in attrs}}

    def locate():
        found = client.locate(attributes=[
            factory.create_attribute(enums.AttributeType.OBJECT_TYPE,
                                     enums.ObjectType.CERTIFICATE),
            factory.create_attribute(enums.AttributeType.CERTIFICATE_TYPE,
                                     enums.CertificateType.X_509),
            factory.create_attribute(enums.AttributeType.NAME, name),
        ])
        return {"uids": found}

    if run(steps, "open", client.open) is not None:
        run(steps, "register", register)
        if "cert" in uids:
            run(steps, "get", get)
            run(steps, "get_attributes", get_attributes)
            run(steps, "locate", locate)
            run(steps, "destroy", lambda: client.destroy(uids["cert"]))
        client.close()
    json.dump({"version": version, "steps": steps}, sys.stdout,
              sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
