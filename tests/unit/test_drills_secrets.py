"""The secrets drill's search: across chunk borders, inside the layers of a saved image."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from drills import secrets

KEY = b"k3y-Zq8-distinctive-value"


def test_a_needle_split_across_chunks_is_found() -> None:
    chunks = [b"xxxx" + KEY[:5], KEY[5:12], KEY[12:] + b"yyyy"]
    assert secrets.found_in(chunks, [KEY, b"absent"]) == {KEY}
    assert secrets.found_in([b"no key here"], [KEY]) == set()
    assert secrets.found_in([], [KEY]) == set()


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def layer(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            add(archive, name, data)
    return buffer.getvalue()


def test_the_scan_names_the_file_inside_the_layer(tmp_path: Path) -> None:
    saved = tmp_path / "image.tar"
    with tarfile.open(saved, "w") as archive:
        add(archive, "aaa/layer.tar", layer({"etc/os-release": b"plain", "app/x.py": KEY}))
        add(archive, "bbb/layer.tar", layer({f"app/{KEY.decode()}.txt": b"name only"}))
        add(archive, "config.json", b'{"Env": ["A=' + KEY + b'"]}')
        add(archive, "manifest.json", b"[]")
    where = secrets.scan_image(saved, [KEY, b"plain", b"absent"])
    assert where[KEY] == ["aaa/layer.tar:app/x.py", f"bbb/layer.tar:app/{KEY.decode()}.txt",
                          "config.json"]  # fmt: skip
    assert where[b"plain"] == ["aaa/layer.tar:etc/os-release"]
    assert where[b"absent"] == []
