#!/usr/bin/env python3
"""Write a one-layer image as a docker-archive tarball that `ctr images import`
(and `docker load`) accept, from files on this machine: no registry, no docker.

  oci_image.py OUT.tar NAME:TAG --file SRC:DEST[:MODE] ... [--link TARGET:DEST ...]
               [--entrypoint JSON] [--cmd JSON] [--user UID:GID]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
import time


def build(args: argparse.Namespace) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs: set[str] = set()

        def ensure_dirs(path: str, mode: int = 0o755) -> None:
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                directory = "/".join(parts[:i])
                if directory not in dirs:
                    dirs.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode if i == len(parts) else 0o755, 0
                    tar.addfile(info)

        for spec in args.dir:  # first, so their modes win over parents made for files
            directory, *mode = spec.split(":")
            ensure_dirs(directory.rstrip("/") + "/x", int(mode[0], 8) if mode else 0o755)

        for spec in args.file:
            src, dest, *mode = spec.split(":")
            ensure_dirs(dest)
            data = open(src, "rb").read()
            info = tarfile.TarInfo(dest.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), int(mode[0], 8) if mode else 0o755, 0
            tar.addfile(info, io.BytesIO(data))
        for spec in args.link:
            target, dest = spec.split(":")
            ensure_dirs(dest)
            info = tarfile.TarInfo(dest.lstrip("/"))
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
            tar.addfile(info)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
        "config": {k: v for k, v in {
            "Entrypoint": json.loads(args.entrypoint) if args.entrypoint else None,
            "Cmd": json.loads(args.cmd) if args.cmd else None,
            "User": args.user,
            "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
        }.items() if v},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [args.name], "Layers": ["layer.tar"]}]
    with tarfile.open(args.out, "w") as out:
        for name, data in (("layer.tar", layer_bytes), (config_name, config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            out.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("name")
    parser.add_argument("--file", action="append", default=[])
    parser.add_argument("--link", action="append", default=[])
    parser.add_argument("--dir", action="append", default=[], help="PATH[:MODE], e.g. /tmp:1777")
    parser.add_argument("--entrypoint")
    parser.add_argument("--cmd")
    parser.add_argument("--user")
    build(parser.parse_args())


if __name__ == "__main__":
    main()
