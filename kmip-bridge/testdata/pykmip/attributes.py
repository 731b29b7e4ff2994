# Copyright The KES bridge authors.
# SPDX-License-Identifier: AGPL-3.0-only
"""The attributes a PyKMIP client reads, at one KMIP version.

Run by kmip-bridge/pykmip_attrs_test.go against the bridge. Usage:

    attributes.py CONFIG_FILE KMIP_VERSION NAME...

It connects with the credential CONFIG_FILE gives (the test gives empty
username and password lines, so PyKMIP sends an empty Username/Password
credential, as with its sample configuration), creates an AES-256 key, reads the named
attributes (PyKMIP 0.10 cannot decode every attribute KMIP defines, for
example Original Creation Date and Always Sensitive, so Get Attributes
without names fails in it whenever a server reports them), gets the key,
reads Fresh again, and destroys the key. It prints one JSON object: per step whether
it worked, and the attributes read as text. Key material is never printed.
"""

import enum
import json
import logging
import sys

from kmip import enums
from kmip.pie import client as pie_client

VERSIONS = {
    "1.0": enums.KMIPVersion.KMIP_1_0,
    "1.1": enums.KMIPVersion.KMIP_1_1,
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.3": enums.KMIPVersion.KMIP_1_3,
    "1.4": enums.KMIPVersion.KMIP_1_4,
}


def text(v):
    """Text form of an attribute value."""
    value = getattr(v, "value", v)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(v, enum.Enum):
        return v.name
    return str(value)


def main():
    config_file, version = sys.argv[1:3]
    names = sys.argv[3:]
    logging.disable(logging.CRITICAL)
    out = {"steps": {}}

    def run(step, fn):
        try:
            r = fn()
            out["steps"][step] = {"ok": True}
            return r
        except Exception as e:  # noqa: BLE001 - every failure is a result
            out["steps"][step] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
            return None

    def attributes(uid, names=None):
        _, attrs = client.get_attributes(uid, names)
        res = {}
        for a in attrs:
            res.setdefault(a.attribute_name.value, []).append(text(a.attribute_value))
        return res

    client = pie_client.ProxyKmipClient(
        config="client", config_file=config_file,
        kmip_version=VERSIONS[version])
    if run("open", client.open) is None and not out["steps"]["open"]["ok"]:
        json.dump(out, sys.stdout)
        return 0
    uid = run("create", lambda: client.create(enums.CryptographicAlgorithm.AES, 256))
    if uid:
        out["all"] = run("get_attributes", lambda: attributes(uid, names))
        run("get", lambda: client.get(uid))
        if "Fresh" in names:
            out["after_get"] = run("get_attributes_fresh", lambda: attributes(uid, ["Fresh"]))
        run("destroy", lambda: client.destroy(uid))
    client.close()
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
