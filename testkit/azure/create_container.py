#!/usr/bin/env python3
"""create_container.py BLOB_URL NAME - create a container in Azurite (the Azure Blob emulator) with a
SharedKey-signed request made with the emulator's well-known development account and key, using the
standard library only (the tests have no Azure SDK). An existing container is not an error."""
import base64
import email.utils
import hashlib
import hmac
import sys
import urllib.error
import urllib.request

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
VERSION = "2021-08-06"

url, name = sys.argv[1].rstrip("/"), sys.argv[2]
date = email.utils.formatdate(usegmt=True)
headers = {"x-ms-date": date, "x-ms-version": VERSION}
canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
# Path-style (emulator) URLs put the account in the path, so it appears twice here.
canon_resource = f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
# urllib sends a Content-Type with any body: name it, and sign it (the fifth field).
CTYPE = "application/octet-stream"
to_sign = "PUT\n" + "\n" * 4 + CTYPE + "\n" * 7 + canon_headers + canon_resource
sig = base64.b64encode(hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
headers["Authorization"] = f"SharedKey {ACCOUNT}:{sig}"
headers["Content-Length"] = "0"
headers["Content-Type"] = CTYPE
req = urllib.request.Request(f"{url}/{ACCOUNT}/{name}?restype=container", method="PUT", headers=headers, data=b"")
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    if e.code != 409:
        sys.exit(f"HTTP {e.code}: {e.read().decode(errors='replace')}")
