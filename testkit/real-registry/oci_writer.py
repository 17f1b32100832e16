#!/usr/bin/env python3
"""Deterministic OCI image-layout writer for stowage's real-registry fixture.

Usage:  oci_writer.py OUT_DIR

Writes an OCI image layout (oci-layout, index.json, blobs/sha256/*) holding every image the
fixture pushes, one index.json entry per image with the annotation
``org.opencontainers.image.ref.name`` set to a short name (base, web, tool, web-sbom, ...).
``build.sh`` then pushes those with ``skopeo copy oci:OUT_DIR:NAME docker://...``.

Every byte is a pure function of this file, so every digest is the same on every run and
machine:
  * timestamps are fixed (2024-01-01T00:00:00Z), tar headers are written by hand (uid/gid 0,
    fixed mtime, fixed field formatting) instead of by ``tarfile``, whose header details have
    changed between Python releases;
  * the gzip framing is written by hand too (MTIME 0, XFL 0, OS 3 = what Python 3.11's
    ``gzip.compress(mtime=0)`` emits; newer Pythons emit OS 255), only the raw deflate stream comes
    from zlib (level 6). A zlib other than the classic one (e.g. zlib-ng) could in principle
    deflate differently; the self-check at the end catches that;
  * "random" payloads come from ``random.Random(seed).randbytes`` (Mersenne Twister, stable
    since Python 3.9);
  * JSON is compact (``separators=(",", ":")``) with insertion-ordered keys.

The images are byte-identical to those of the shared reference recipe
(shared/tools/make-real-registry.sh), so the digests quoted in
shared/reference/real-registry-observations.md hold for them too; web-sbom and web-sig are new.
"""

import base64
import hashlib
import json
import os
import random
import struct
import sys
import zlib

EPOCH = 1704067200                 # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SBOM_ARTIFACT_TYPE = "application/vnd.example.sbom.v1"
SBOM_LAYER = "application/vnd.example.sbom.v1+json"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
REF_ANNOTATION = "org.opencontainers.image.ref.name"

# Digest of the first amd64 base layer; if zlib or this file's tar/gzip code ever produces
# different bytes, every digest in the fixture changes, so fail loudly instead.
EXPECTED_BASE_LAYER = "sha256:376a3eef07ac031be8f8a81cf8673d0d0ac35181599cd39d46d643c59ee5a5ec"


class Layout:
    def __init__(self, out):
        self.out = out
        self.blob_dir = os.path.join(out, "blobs", "sha256")
        os.makedirs(self.blob_dir, exist_ok=True)

    def put_blob(self, data):
        """Store bytes as a blob; returns (digest, size)."""
        hexd = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blob_dir, hexd), "wb") as f:
            f.write(data)
        return "sha256:" + hexd, len(data)


def jbytes(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


# ---- tar (ustar) and gzip, by hand --------------------------------------------------------

def _octal(n, width):
    """ustar numeric field: zero-padded octal, NUL-terminated (like Python's tarfile)."""
    return b"%0*o\0" % (width - 1, n)


def _ustar_header(name, size, mode, typeflag):
    name_b = name.encode()
    if len(name_b) > 100:
        raise ValueError("path too long for this minimal ustar writer: %s" % name)
    fields = [
        name_b.ljust(100, b"\0"),
        _octal(mode, 8),
        _octal(0, 8),                 # uid
        _octal(0, 8),                 # gid
        _octal(size, 12),
        _octal(EPOCH, 12),            # mtime
        b" " * 8,                     # checksum placeholder (spaces, per the spec)
        typeflag,
        b"\0" * 100,                  # linkname
        b"ustar\x00", b"00",          # POSIX ustar magic + version
        b"root".ljust(32, b"\0"),     # uname
        b"root".ljust(32, b"\0"),     # gname
        b"\0" * 16,                   # devmajor, devminor: empty for non-device entries
        b"\0" * 155,                  # prefix
    ]
    hdr = b"".join(fields).ljust(512, b"\0")
    chksum = b"%06o\0 " % sum(hdr)
    return hdr[:148] + chksum + hdr[156:]


def tar_bytes(files):
    """files: {path: bytes}. Parent directories are added; entries sorted; fixed metadata."""
    dirs = sorted({p[:i] for p in files for i in range(1, len(p)) if p[i] == "/"})
    out = bytearray()
    for d in dirs:
        out += _ustar_header(d + "/", 0, 0o755, b"5")
    for p in sorted(files):
        data = files[p]
        out += _ustar_header(p, len(data), 0o644, b"0")
        out += data
        out += b"\0" * (-len(data) % 512)
    out += b"\0" * 1024                    # end-of-archive: two zero blocks
    out += b"\0" * (-len(out) % 10240)     # pad to a full 20-block record, like tar(1)
    return bytes(out)


def gzip_bytes(raw):
    """gzip member: fixed header (no name, MTIME 0, XFL 0, OS 3), deflate level 6, trailer."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = comp.compress(raw) + comp.flush()
    header = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3])
    trailer = struct.pack("<II", zlib.crc32(raw) & 0xFFFFFFFF, len(raw) & 0xFFFFFFFF)
    return header + body + trailer


# ---- images --------------------------------------------------------------------------------

def layer(lay, files):
    """-> (gzip layer descriptor, diff_id)"""
    raw = tar_bytes(files)
    dg, size = lay.put_blob(gzip_bytes(raw))
    return ({"mediaType": OCI_LAYER_GZIP, "digest": dg, "size": size},
            "sha256:" + hashlib.sha256(raw).hexdigest())


def image(lay, name, layers, arch="amd64", variant=None, created=CREATED):
    """Ordinary OCI image: config + gzip layers. -> manifest descriptor"""
    cfg = {"created": created, "architecture": arch, "os": "linux"}
    if variant:
        cfg["variant"] = variant
    cfg["config"] = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                     "Cmd": ["/bin/sh"], "Labels": {"org.regfix.image": name}}
    cfg["rootfs"] = {"type": "layers", "diff_ids": [d for _, d in layers]}
    cfg["history"] = [{"created": created, "created_by": "regfix layer %d of %s" % (i, name)}
                      for i in range(len(layers))]
    cdg, csize = lay.put_blob(jbytes(cfg))
    man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": cdg, "size": csize},
           "layers": [l for l, _ in layers]}
    mdg, msize = lay.put_blob(jbytes(man))
    return {"mediaType": OCI_MANIFEST, "digest": mdg, "size": msize}


def sbom_referrer(lay, subject):
    """OCI 1.1 artifact: image manifest with artifactType, the empty config ("{}", 2 bytes),
    one non-tar layer, and a subject pointing at another manifest."""
    edg, esize = lay.put_blob(b"{}")
    sbom = {"spdxVersion": "SPDX-2.3", "name": "team/app/web:1.0",
            "creationInfo": {"created": CREATED, "creators": ["Tool: stowage-testkit"]},
            "packages": [{"name": "regfix-web", "versionInfo": "1.0"}]}
    ldg, lsize = lay.put_blob(jbytes(sbom))
    man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "artifactType": SBOM_ARTIFACT_TYPE,
           "config": {"mediaType": OCI_EMPTY, "digest": edg, "size": esize},
           "layers": [{"mediaType": SBOM_LAYER, "digest": ldg, "size": lsize}],
           "subject": subject,
           "annotations": {"org.opencontainers.image.created": CREATED}}
    mdg, msize = lay.put_blob(jbytes(man))
    return {"mediaType": OCI_MANIFEST, "digest": mdg, "size": msize,
            "artifactType": SBOM_ARTIFACT_TYPE}


def cosign_signature(lay, signed):
    """Shape of a cosign (tag-scheme) signature manifest: a small OCI image manifest whose one
    layer is the "simple signing" JSON payload, with the signature in a layer annotation.
    The signature bytes are fake (seeded random), nothing here verifies them."""
    payload = jbytes({"critical": {"identity": {"docker-reference": "team/app/web"},
                                   "image": {"docker-manifest-digest": signed["digest"]},
                                   "type": "cosign container image signature"},
                      "optional": None})
    pdg, psize = lay.put_blob(payload)
    cfg = {"architecture": "", "created": "0001-01-01T00:00:00Z",
           "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
           "rootfs": {"type": "layers", "diff_ids": [pdg]}, "config": {}}
    cdg, csize = lay.put_blob(jbytes(cfg))
    sig = base64.b64encode(random.Random(7).randbytes(71)).decode()
    man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": cdg, "size": csize},
           "layers": [{"mediaType": COSIGN_LAYER, "digest": pdg, "size": psize,
                       "annotations": {"dev.cosignproject.cosign/signature": sig}}]}
    mdg, msize = lay.put_blob(jbytes(man))
    return {"mediaType": OCI_MANIFEST, "digest": mdg, "size": msize}


def build(out):
    lay = Layout(out)

    def small(path, text):
        return layer(lay, {path: text.encode()})

    # Shared base layers: 256 KiB / 64 KiB of seeded pseudo-random (incompressible) bytes, so
    # the shared layer dominates the storage size and cross-repo sharing is visible in sizes.
    base_amd64 = layer(lay, {"etc/os-release": b"NAME=regfix-base\nVERSION_ID=1.0\nARCH=amd64\n",
                             "usr/share/regfix/base.bin": random.Random(1).randbytes(256 * 1024)})
    if base_amd64[0]["digest"] != EXPECTED_BASE_LAYER:
        sys.exit("oci_writer: base layer digest %s != expected %s (zlib differs?); the fixture "
                 "would not be reproducible" % (base_amd64[0]["digest"], EXPECTED_BASE_LAYER))
    base_arm64 = layer(lay, {"etc/os-release": b"NAME=regfix-base\nVERSION_ID=1.0\nARCH=arm64\n",
                             "usr/share/regfix/base.bin": random.Random(2).randbytes(64 * 1024)})

    refs = {}
    refs["base"] = image(lay, "base", [base_amd64])
    refs["api-build1"] = image(lay, "api-build1", [base_amd64, small("app/api/VERSION", "build1\n")])
    refs["api-build2"] = image(lay, "api-build2", [base_amd64, small("app/api/VERSION", "build2\n")])
    refs["api-rc"] = image(lay, "api-rc", [base_amd64, small("app/api/VERSION", "rc, deleted via API\n")])
    refs["web"] = image(lay, "web", [base_amd64, small("srv/www/index.html", "<h1>regfix web 1.0</h1>\n")])
    refs["web-untagged"] = image(lay, "web-untagged",
                                 [base_amd64, small("srv/www/index.html", "<h1>pushed by digest only</h1>\n")])
    refs["worker-1"] = image(lay, "worker-1", [base_amd64, small("app/worker/VERSION", "1\n")])
    refs["worker-2"] = image(lay, "worker-2", [base_amd64, small("app/worker/VERSION", "2\n")])
    refs["digestonly"] = image(lay, "digestonly",
                               [base_amd64, small("app/digestonly/VERSION", "never tagged\n")])

    # Multi-arch: an OCI image index with linux/amd64 and linux/arm64/v8 children.
    amd = image(lay, "tool-amd64", [base_amd64, small("usr/bin/tool", "#!/bin/sh\necho tool amd64\n")])
    arm = image(lay, "tool-arm64", [base_arm64, small("usr/bin/tool", "#!/bin/sh\necho tool arm64\n")],
                "arm64", "v8")
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(amd, platform={"architecture": "amd64", "os": "linux"}),
        dict(arm, platform={"architecture": "arm64", "os": "linux", "variant": "v8"})]}
    dg, size = lay.put_blob(jbytes(idx))
    refs["tool"] = {"mediaType": OCI_INDEX, "digest": dg, "size": size}

    # Referrer and cosign signature of team/app/web:1.0. skopeo pushes the OCI "web" manifest
    # byte-for-byte (build.sh checks that the registry reports this digest), so the subject
    # and the sha256-<hex>.sig tag computed here match what ends up in the registry.
    web_desc = {"mediaType": OCI_MANIFEST, "digest": refs["web"]["digest"], "size": refs["web"]["size"]}
    refs["web-sbom"] = sbom_referrer(lay, web_desc)
    refs["web-sig"] = cosign_signature(lay, web_desc)

    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "index.json"), "w") as f:
        f.write(json.dumps({"schemaVersion": 2, "manifests": [
            dict(d, annotations={REF_ANNOTATION: r}) for r, d in refs.items()]},
            separators=(",", ":")))
    return refs


def build_platforms(out):
    """Two single-platform images that no index references (linux/arm64/v8 and
    linux/amd64), for the retention platform selector: a child of the fixture's index is
    kept wherever it is linked while the index survives, so it cannot show a deletion."""
    lay = Layout(out)
    refs = {"arm-only": image(lay, "arm-only", [layer(lay, {"etc/arch": b"arm64 only\n"})],
                              "arm64", "v8"),
            "amd-only": image(lay, "amd-only", [layer(lay, {"etc/arch": b"amd64 only\n"})])}
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "index.json"), "w") as f:
        f.write(json.dumps({"schemaVersion": 2, "manifests": [
            dict(d, annotations={REF_ANNOTATION: r}) for r, d in refs.items()]},
            separators=(",", ":")))
    return refs


def build_dated(out, dates):
    """One single-layer image per date, named built-0, built-1, ..., whose config says it was
    built then (`created` and its build step), for the build-date tests: a copy of the storage
    changes every file date but not these."""
    lay = Layout(out)
    refs = {}
    for i, d in enumerate(dates):
        refs["built-%d" % i] = image(lay, "built-%d" % i,
                                     [layer(lay, {"etc/built": ("%s\n" % d).encode()})], created=d)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "index.json"), "w") as f:
        f.write(json.dumps({"schemaVersion": 2, "manifests": [
            dict(d, annotations={REF_ANNOTATION: r}) for r, d in refs.items()]},
            separators=(",", ":")))
    return refs


def main(argv):
    if len(argv) == 3 and argv[1] == "--platforms":
        refs = build_platforms(argv[2])
    elif len(argv) == 4 and argv[1] == "--built":
        refs = build_dated(argv[3], argv[2].split(","))
    elif len(argv) == 2:
        refs = build(argv[1])
    else:
        sys.exit("usage: oci_writer.py [--platforms | --built DATE,DATE...] OUT_DIR")
    for name, desc in refs.items():
        print("%s\t%s\t%s" % (name, desc["digest"], desc["mediaType"]))


if __name__ == "__main__":
    main(sys.argv)
