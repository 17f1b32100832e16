#!/usr/bin/env python3
"""Deterministic small images for the online-apply stress test (issue 18).

Usage:  stress_images.py OUT_DIR COUNT SEED [PREFIX]

Writes an OCI image layout with COUNT images named PREFIX-000, PREFIX-001, ... (PREFIX defaults
to "img"). Every image has its own config and two small gzip layers that no other image shares
(a seeded random payload and a text file naming the image), so deleting one image's manifest
makes exactly its three blobs garbage. Bytes are a pure function of (COUNT, SEED, PREFIX): the
tar and gzip framing come from oci_writer.py (fixed headers, mtime 0).

Prints one line per image on stdout:
  NAME <TAB> MANIFEST_DIGEST <TAB> MEDIA_TYPE <TAB> BLOB_DIGEST,BLOB_DIGEST,...  (config first)
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci_writer as ow  # noqa: E402  (the tar/gzip writer and the image builder)


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit("usage: stress_images.py OUT_DIR COUNT SEED [PREFIX]")
    out, count, seed = argv[1], int(argv[2]), int(argv[3])
    prefix = argv[4] if len(argv) == 5 else "img"
    lay = ow.Layout(out)
    refs = {}
    rows = []
    for i in range(count):
        name = "%s-%03d" % (prefix, i)
        rng = random.Random("%d/%s" % (seed, name))
        payload = ow.layer(lay, {"opt/stress/%s.bin" % name: rng.randbytes(2048 + rng.randrange(2048))})
        text = ow.layer(lay, {"etc/stress-image": ("%s seed %d\n" % (name, seed)).encode()})
        desc = ow.image(lay, name, [payload, text])
        refs[name] = desc
        with open(os.path.join(out, "blobs", "sha256", desc["digest"][7:]), "rb") as f:
            man = json.load(f)
        blobs = [man["config"]["digest"]] + [l["digest"] for l in man["layers"]]
        rows.append("%s\t%s\t%s\t%s" % (name, desc["digest"], desc["mediaType"], ",".join(blobs)))
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "index.json"), "w") as f:
        f.write(json.dumps({"schemaVersion": 2, "manifests": [
            dict(d, annotations={ow.REF_ANNOTATION: r}) for r, d in refs.items()]},
            separators=(",", ":")))
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv)
