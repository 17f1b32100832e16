#!/usr/bin/env python3
"""The GCS XML API writes fake-gcs-server lacks, in front of it, for tests only.

Real GCS takes an object PUT, a copy (PUT with x-goog-copy-source) and XML multipart uploads
at https://storage.googleapis.com/BUCKET/OBJECT; the object_store crate's GCS client writes
only that way. fake-gcs-server (1.54) answers them "400 invalid uploadType": its writes go
through the JSON API (fsouza/fake-gcs-server#331, #1164, #2048). This shim listens on PORT,
turns each XML write into the JSON API call that does the same thing (media upload, copyTo;
x-goog-if-generation-match checked by the shim, which the emulator does not), answers as the XML API does (ETag, x-goog-generation,
412 on a failed precondition), and passes every other request through unchanged.

usage: gcs-xml-shim.py PORT UPSTREAM_URL
"""

import hashlib
import http.client
import http.server
import json
import sys
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

UPSTREAM = None
UPLOADS = {}
LOCK = threading.Lock()
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def upstream(method, path, body=None, headers=None):
    u = urllib.parse.urlsplit(UPSTREAM)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheaders(), data


# fake-gcs-server ignores ifGenerationMatch on media uploads and copies, so the shim checks
# the precondition itself; every write goes through it one at a time, which makes the check
# and the write one step for every client of the shim (the tests' only way to write).
WRITES = threading.Lock()


def precondition_holds(bucket, name, match):
    if match is None:
        return True
    s, _, out = upstream("GET", f"/storage/v1/b/{bucket}/o/{quote(name)}")
    if s == 404:
        return match == "0"
    return s == 200 and str(json.loads(out).get("generation")) == match


def quote(name):
    return urllib.parse.quote(name, safe="")


class Shim(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status, headers=(), data=b""):
        self.send_response(status)
        length = str(len(data))
        for k, v in headers:
            if k.lower() not in HOP:
                self.send_header(k, v)
            elif k.lower() == "content-length" and self.command == "HEAD":
                length = v  # a HEAD answers the object's length, without its body
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def target(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.lstrip("/").split("/", 1)
        if len(parts) != 2 or parts[0] in ("storage", "upload", "download", "_internal"):
            return None
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        return parts[0], urllib.parse.unquote(parts[1]), q

    def media_upload(self, bucket, name, data, match=None):
        ctype = self.headers.get("Content-Type") or "application/octet-stream"
        with WRITES:
            if not precondition_holds(bucket, name, match):
                return 412, [], b""
            return upstream(
                "POST",
                f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name)}",
                data,
                {"Content-Type": ctype, "Content-Length": str(len(data))},
            )

    def written(self, s, h, out, xml_body=b""):
        if s != 200:
            # The XML API's precondition failure is 412, whatever the JSON API said.
            return self.answer(412 if s in (409, 412) else s, h, out)
        meta = json.loads(out or b"{}")
        etag = meta.get("etag") or meta.get("md5Hash") or hashlib.md5(out).hexdigest()
        hs = [("ETag", f'"{etag}"'), ("x-goog-generation", str(meta.get("generation", "1")))]
        return self.answer(200, hs, xml_body)

    def passthrough(self):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        data = self.body()
        if data:
            headers["Content-Length"] = str(len(data))
        s, h, out = upstream(self.command, self.path, data or None, headers)
        self.answer(s, h, out)

    def do_PUT(self):
        t = self.target()
        if t is None:
            return self.passthrough()
        bucket, name, q = t
        match = self.headers.get("x-goog-if-generation-match")
        if "uploadId" in q:
            data = self.body()
            with LOCK:
                parts = UPLOADS.get(q["uploadId"][0])
                if parts is None:
                    return self.answer(404)
                parts[int(q["partNumber"][0])] = data
            return self.answer(200, [("ETag", f'"{hashlib.md5(data).hexdigest()}"')])
        source = self.headers.get("x-goog-copy-source")
        if source is not None:
            self.body()
            sbucket, sname = urllib.parse.unquote(source).lstrip("/").split("/", 1)
            with WRITES:
                if not precondition_holds(bucket, name, match):
                    return self.answer(412)
                s, h, out = upstream(
                    "POST",
                    f"/storage/v1/b/{sbucket}/o/{quote(sname)}/copyTo/b/{bucket}/o/{quote(name)}",
                    b"",
                    {"Content-Length": "0"},
                )
            return self.written(s, h, out)
        return self.written(*self.media_upload(bucket, name, self.body(), match))

    def do_POST(self):
        t = self.target()
        if t is None:
            return self.passthrough()
        bucket, name, q = t
        if "uploads" in q:
            self.body()
            uid = uuid.uuid4().hex
            with LOCK:
                UPLOADS[uid] = {}
            xml = (
                "<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key>"
                "<UploadId>%s</UploadId></InitiateMultipartUploadResult>" % (bucket, name, uid)
            )
            return self.answer(200, [("Content-Type", "application/xml")], xml.encode())
        if "uploadId" in q:
            wanted = [
                int(p.findtext("PartNumber"))
                for p in ET.fromstring(self.body() or b"<x/>").iter("Part")
            ]
            with LOCK:
                parts = UPLOADS.pop(q["uploadId"][0], None)
            if parts is None or any(n not in parts for n in wanted):
                return self.answer(400)
            data = b"".join(parts[n] for n in wanted)
            s, h, out = self.media_upload(bucket, name, data)
            etag = json.loads(out or b"{}").get("etag", "") if s == 200 else ""
            xml = "<CompleteMultipartUploadResult><ETag>%s</ETag></CompleteMultipartUploadResult>" % etag
            return self.written(s, h, out, xml.encode())
        return self.passthrough()

    def do_DELETE(self):
        t = self.target()
        if t is not None and "uploadId" in t[2]:
            with LOCK:
                UPLOADS.pop(t[2]["uploadId"][0], None)
            return self.answer(204)
        return self.passthrough()

    do_GET = passthrough
    do_HEAD = passthrough


def main():
    global UPSTREAM
    port, UPSTREAM = int(sys.argv[1]), sys.argv[2]
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Shim).serve_forever()


if __name__ == "__main__":
    main()
