"""A tiny stand-in for the Hugging Face Hub, run as its own process by the push tests.

It implements the requests huggingface_hub 2.4 sends to upload a folder (`create_repo`, `upload_folder` through
the LFS "basic" transfer when Xet is off) and to download one (`snapshot_download`, `hf_hub_download`), logged by
running them against it: create repo, validate-yaml (of an uploaded README.md), preupload, LFS batch, LFS PUT,
LFS verify, commit (ndjson), repo info at a revision, tree listing, HEAD/GET of a file at a revision. Each request but the LFS PUT (a presigned storage URL on the Hub) needs
`Authorization: Bearer TOKEN`. A commit is checked
as the Hub would: every LFS file it names must have been uploaded with that sha256 and size.

    python tests/hub_server.py STORE_DIR TOKEN   ->  prints "PORT" once listening

STORE_DIR/objects/<sha256> holds file contents; STORE_DIR/log.jsonl one line per request (method, path).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".model")  # like the Hub's default .gitattributes
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, dict] = {}   # repo -> {"private", "refs": {branch: oid}, "commits": {oid: {path: sha}}}
        self.lock = threading.Lock()

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        (self.root / "objects" / sha).write_bytes(data)
        return sha

    def has(self, sha: str, size: int) -> bool:
        p = self.root / "objects" / sha
        return p.is_file() and p.stat().st_size == size

    def resolve(self, repo: str, rev: str) -> tuple[str, dict[str, str]] | None:
        r = self.repos.get(repo)
        if r is None:
            return None
        oid = r["refs"].get(rev, rev)
        return (oid, r["commits"][oid]) if oid in r["commits"] else None


class Handler(BaseHTTPRequestHandler):
    store: Store
    token: str

    def log_message(self, *args) -> None:  # quiet; the log file says what came in
        pass

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Message": message})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _base(self) -> str:
        return f"http://{self.headers['Host']}"

    def _route(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        with open(self.store.root / "log.jsonl", "a") as log:
            log.write(json.dumps({"method": method, "path": path}) + "\n")
        routes = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)", self.preupload),
            ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})/(?P<size>\d+)", self.lfs_put),
            ("POST", r"/lfs-verify", self.lfs_verify),
            ("POST", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)", self.commit),
            ("GET", rf"/api/models/{REPO}(/revision/(?P<rev>[^/]+))?", self.repo_info),
            ("GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)", self.tree),
            ("HEAD", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve_file),
            ("GET", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve_file),
        ]
        for m, pattern, fn in routes:
            hit = re.fullmatch(pattern, path)
            if m == method and hit:
                # the LFS PUT goes to a presigned storage URL (S3 on the Hub): no token, the content names itself
                if fn != self.lfs_put and self.headers.get("Authorization") != f"Bearer {self.token}":
                    return self._error(401, "Invalid credentials in Authorization header")
                with self.store.lock:
                    return fn(**{k: v for k, v in hit.groupdict().items() if v is not None})
        return self._error(404, f"no route {method} {path}")

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    # ---- upload
    def create_repo(self) -> None:
        body = json.loads(self._body())
        repo = f"{body['organization']}/{body['name']}" if body.get("organization") else f"user/{body['name']}"
        if repo in self.store.repos:
            return self._json(409, {"error": "You already created this model repo", "url": f"{self._base()}/{repo}"})
        self.store.repos[repo] = {"private": body.get("visibility") == "private", "refs": {"main": "0" * 40},
                                  "commits": {"0" * 40: {}}}
        self._json(200, {"url": f"{self._base()}/{repo}", "name": repo})

    def validate_yaml(self) -> None:
        """The README.md's metadata, checked for what the Hub's model tree relies on."""
        text = json.loads(self._body())["content"]
        errors = []
        if not text.startswith("---\n") or text.count("---\n") < 2:
            errors.append("no YAML front matter")
        else:
            try:
                meta = yaml.safe_load(text.split("---\n")[1])
            except yaml.YAMLError as e:
                meta, errors = None, [f"YAML: {e}"]
            if not isinstance(meta, dict):
                errors.append("metadata is not a mapping")
            else:
                relation = meta.get("base_model_relation")
                if relation is not None and (relation not in ("adapter", "merge", "quantized", "finetune")
                                             or not meta.get("base_model")):
                    errors.append(f"base_model_relation {relation!r} needs a known relation and a base_model")
                parents = meta.get("base_model", [])
                for parent in parents if isinstance(parents, list) else [parents]:
                    if not isinstance(parent, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", parent):
                        errors.append(f"base_model {parent!r} is not a repo id")
                if not isinstance(meta.get("tags", []), list) or not isinstance(meta.get("license", ""), str):
                    errors.append("tags must be a list and license a string")
        if errors:
            return self._json(400, {"errors": [{"message": m} for m in errors]})
        self._json(200, {"errors": [], "warnings": []})

    def preupload(self, repo: str, rev: str) -> None:
        if self.store.resolve(repo, rev) is None:
            return self._error(404, f"Repository {repo} or revision {rev} not found")
        files = json.loads(self._body())["files"]
        self._json(200, {"files": [{"path": f["path"], "shouldIgnore": False,
                                    "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular"}
                                   for f in files]})

    def lfs_batch(self, repo: str) -> None:
        body = json.loads(self._body())
        objects = []
        for o in body["objects"]:
            entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if not self.store.has(o["oid"], o["size"]):
                entry["actions"] = {
                    "upload": {"href": f"{self._base()}/lfs-upload/{o['oid']}/{o['size']}"},
                    "verify": {"href": f"{self._base()}/lfs-verify"}}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def lfs_put(self, oid: str, size: str) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid or len(data) != int(size):
            return self._error(400, "uploaded content does not match its oid and size")
        self.store.put(data)
        self._json(200, {})

    def lfs_verify(self) -> None:
        body = json.loads(self._body())
        if not self.store.has(body["oid"], body["size"]):
            return self._error(404, f"object {body['oid']} not uploaded")
        self._json(200, {})

    def commit(self, repo: str, rev: str) -> None:
        found = self.store.resolve(repo, rev)
        if found is None:
            return self._error(404, f"Repository {repo} or revision {rev} not found")
        files = dict(found[1])
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        for item in lines:
            value = item["value"]
            if item["key"] == "file":
                files[value["path"]] = self.store.put(base64.b64decode(value["content"]))
            elif item["key"] == "lfsFile":
                if not self.store.has(value["oid"], value["size"]):
                    return self._error(400, f"LFS file {value['path']} was never uploaded")
                files[value["path"]] = value["oid"]
            elif item["key"] == "deletedFile":
                files.pop(value["path"], None)
            elif item["key"] != "header":
                return self._error(400, f"unknown commit operation {item['key']}")
        oid = hashlib.sha1(json.dumps([found[0], sorted(files.items())]).encode()).hexdigest()
        self.store.repos[repo]["commits"][oid] = files
        self.store.repos[repo]["refs"][rev] = oid
        self._json(200, {"commitUrl": f"{self._base()}/{repo}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None})

    # ---- download
    def repo_info(self, repo: str, rev: str = "main") -> None:
        found = self.store.resolve(repo, rev)
        if found is None:
            return self._error(404, f"Repository {repo} or revision {rev} not found")
        oid, files = found
        self._json(200, {"id": repo, "modelId": repo, "sha": oid, "private": self.store.repos[repo]["private"],
                         "siblings": [{"rfilename": p} for p in sorted(files)]})

    def tree(self, repo: str, rev: str) -> None:
        found = self.store.resolve(repo, rev)
        if found is None:
            return self._error(404, f"Repository {repo} or revision {rev} not found")
        entries = []
        for path, sha in sorted(found[1].items()):
            data = (self.store.root / "objects" / sha).read_bytes()
            entry = {"type": "file", "path": path, "size": len(data), "oid": _etag(path, sha, data)}
            if path.endswith(LFS_SUFFIXES):  # the Hub lists an LFS file's own sha256 beside its pointer's blob id
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n"
                entry |= {"oid": _git_blob(pointer.encode()),
                          "lfs": {"oid": sha, "size": len(data), "pointerSize": len(pointer)}}
            entries.append(entry)
        self._json(200, entries)

    def resolve_file(self, repo: str, rev: str, file: str) -> None:
        found = self.store.resolve(repo, rev)
        if found is None or file not in found[1]:
            return self._error(404, f"{file} not found in {repo}@{rev}")
        oid, files = found
        data = (self.store.root / "objects" / files[file]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{_etag(file, files[file], data)}"')
        self.send_header("X-Repo-Commit", oid)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _etag(path: str, sha256: str, data: bytes) -> str:
    """The Hub's ETag: an LFS file's sha256, a regular file's git blob id."""
    return sha256 if path.endswith(LFS_SUFFIXES) else _git_blob(data)


TOKEN = "hf_test_token"
HERE = Path(__file__).parent


@contextlib.contextmanager
def running_hub(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """This server as a child process: (its URL, the environment a child process needs to use it)."""
    proc = subprocess.Popen([sys.executable, str(HERE / "hub_server.py"), str(tmp_path / "store"), TOKEN],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{proc.stdout.readline().strip()}"
        yield url, dict(os.environ, HF_ENDPOINT=url, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1",
                        HF_HOME=str(tmp_path / "hf"), BASEFUSE_CACHE=str(tmp_path / "cache"),
                        PYTHONPATH=os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    finally:
        proc.terminate()
        proc.wait(10)


def run(args: list, env: dict) -> subprocess.CompletedProcess:
    """`python ARGS` in a child process with `env`."""
    return subprocess.run([sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


def main() -> None:
    root, token = Path(sys.argv[1]), sys.argv[2]
    Handler.store, Handler.token = Store(root), token
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
