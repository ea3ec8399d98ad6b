#!/usr/bin/env python3
"""Regenerates the seed corpus of fuzz_unpack in corpus/unpack/: small valid
layers (tar, tar+gzip, tar+zstd) with every entry type, and hostile ones
(escapes, a bomb, truncation). Run from anywhere; needs the zstd CLI."""
import gzip
import io
import os
import subprocess
import tarfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unpack")


def entry(name, type=tarfile.REGTYPE, data=b"", link="", mode=0o644, pax=None, **kw):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = type, link, mode, 1600000000
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    if pax:
        ti.pax_headers = pax
    return ti, data


def tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def main():
    os.makedirs(OUT, exist_ok=True)
    D, L, H = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
    full = tar([
        entry("etc/", D, mode=0o751),
        entry("etc/passwd", data=b"root:x:0:0\n", pax={"SCHILY.xattr.user.a": "b"}),
        entry("bin/su", data=b"su", mode=0o4755),
        entry("bin/su2", H, link="bin/su"),
        entry("lib", L, link="usr/lib"),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        entry("dev/loop0", tarfile.BLKTYPE, devmajor=7, devminor=0),
        entry("run/fifo", tarfile.FIFOTYPE),
        entry("tmp/", D, mode=0o1777),
        entry(".wh.gone"),
        entry("opq/.wh..wh..opq"),
        entry("home/u/f", data=b"x" * 3000, uid=1000, gid=1000),
    ])
    write("full.tar", full)
    write("full.tar.gz", gzip.compress(full, mtime=0))
    write("full.tar.zst", zstd(full))
    write("empty", b"")
    write("dotdot.tar", tar([entry("../escape", data=b"x"), entry("a/../../b", data=b"x")]))
    write("absolute.tar.gz", gzip.compress(tar([entry("/tmp/escape", data=b"x")]), mtime=0))
    write("symlink-parent.tar", tar([entry("l", L, link="/tmp"), entry("l/escape", data=b"x"),
                                     entry("r", L, link="../.."), entry("r/escape", data=b"x")]))
    write("symlink-write.tar", tar([entry("l", L, link="/etc/hostname"),
                                    entry("l", data=b"pwned", mode=0o777)]))
    write("hardlink-outside.tar", tar([entry("s", L, link="/etc"),
                                       entry("h", H, link="s/hostname"),
                                       entry("h2", H, link="../sentinel/canary")]))
    write("replace-symlink.tar.zst", zstd(tar([entry("d", L, link="/tmp"), entry("d/", D),
                                               entry("d/x", data=b"x"), entry("d/.wh.x")])))
    write("whiteout-escape.tar", tar([entry("w", L, link="../sentinel"),
                                      entry("w/.wh.canary"), entry("w/.wh..wh..opq"),
                                      entry(".wh..")]))
    write("bomb.tar.gz", gzip.compress(tar([entry("zeros", data=bytes(24 << 20))]), 9, mtime=0))
    write("truncated.tar.gz", gzip.compress(full, mtime=0)[:300])
    write("longname.tar", tar([entry("d/" + "n" * 300, data=b"x"),
                               entry("s", L, link="t" * 5000)]))


if __name__ == "__main__":
    main()
