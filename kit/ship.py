"""Ship an image to a host without a registry: only the layers the host lacks.

`docker load` skips every layer whose chain already exists in the host's layer store
before it opens the layer's file (engine 20.10, checked), so a `docker save` archive with
those files left out loads fine. The controller exports each image once, cached by image
ID under build/ship/, and cuts per host an archive without the layers that host has.

    python -m kit.ship pack --image TAG --image-id ID --present '[[diff_id, ...], ...]'

prints {"path", "bytes", "layers", "skipped_layers"} as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

from kit.console import KitError
from kit.docker_cli import docker, inspect_image

CACHE = Path("build/ship")
# Exports are the size of the image: keep those of the few newest images only.
KEEP_IMAGES = 3


def _hex(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def export(tag: str, image_id: str, cache: Path = CACHE) -> Path:
    """The full `docker save` of TAG, made once per image ID."""
    record = inspect_image(tag)
    if record is None or record["Id"] != image_id:
        found = record["Id"] if record else "nothing"
        raise KitError(
            f"{tag} is {found} on the controller, not the built {image_id}; "
            "run `nox -s build` again"
        )
    archive = cache / f"{_hex(image_id)}.tar"
    if not archive.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".tar.partial")
        docker("save", "--output", str(partial), tag)
        partial.replace(archive)
        _prune(cache)
    return archive


def _prune(cache: Path) -> None:
    """Remove the archives of all but the KEEP_IMAGES most recently exported images."""
    full = sorted(
        (path for path in cache.glob("*.tar") if "-without-" not in path.name),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for stale in full[KEEP_IMAGES:]:
        for path in cache.glob(f"{stale.stem}*.tar"):
            path.unlink(missing_ok=True)


def present_prefix(diff_ids: list[str], present: list[list[str]]) -> int:
    """How many leading layers of the image the host already holds as one chain.

    A layer is reusable only together with everything under it (its chain ID covers the
    whole stack), so what counts is the longest common prefix with any host image.
    """
    best = 0
    for layers in present:
        shared = 0
        for mine, theirs in zip(diff_ids, layers, strict=False):
            if mine != theirs:
                break
            shared += 1
        best = max(best, shared)
    return best


def pack(
    tag: str, image_id: str, present: list[list[str]], cache: Path = CACHE
) -> dict[str, object]:
    """An archive of TAG without the layer files the host has; cached per skipped count."""
    full = export(tag, image_id, cache)
    with tarfile.open(full) as source:
        manifest = json.load(source.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(source.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        diff_ids: list[str] = config["rootfs"]["diff_ids"]
        layer_files: list[str] = manifest[0]["Layers"]
        skip = present_prefix(diff_ids, present)
        if skip == 0:
            archive = full
        else:
            archive = cache / f"{_hex(image_id)}-without-{skip}.tar"
            if not archive.is_file():
                omitted = set(layer_files[:skip])
                partial = archive.with_suffix(".tar.partial")
                with tarfile.open(partial, "w") as target:
                    for member in source:
                        if member.name in omitted:
                            continue
                        data = source.extractfile(member) if member.isfile() else None
                        target.addfile(member, data)
                partial.replace(archive)
    return {
        "path": str(archive.resolve()),
        "bytes": archive.stat().st_size,
        "layers": len(diff_ids),
        "skipped_layers": skip,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.ship", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="cut the archive one host needs")
    packing.add_argument("--image", required=True, help="tag, e.g. webapp:0.1.0-abc1234")
    packing.add_argument("--image-id", required=True, help="the built image ID, sha256:...")
    packing.add_argument(
        "--present", default="[]", help="JSON list of the host images' RootFS.Layers lists"
    )
    packing.add_argument("--cache", type=Path, default=CACHE)
    arguments = parser.parse_args(argv)
    try:
        present = json.loads(arguments.present)
        result = pack(arguments.image, arguments.image_id, present, arguments.cache)
    except (KitError, json.JSONDecodeError, tarfile.TarError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
