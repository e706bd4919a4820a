"""Regenerate the Python gRPC stubs of the bridge protocol (called by `cargo xtask codegen`).

The proto is copied to ``<tmp>/snakepit_bridge/_proto/`` so that the generated grpc module
imports ``from snakepit_bridge._proto import snakepit_bridge_pb2``.
"""

import argparse
import pathlib
import shutil
import sys
import tempfile

from grpc_tools import protoc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=pathlib.Path, help="repository root")
    parser.add_argument("--out", type=pathlib.Path, help="output root (default: <root>/python/src)")
    args = parser.parse_args()
    proto = args.root / "snakepit-proto" / "proto" / "snakepit_bridge.proto"
    out = args.out or (args.root / "python" / "src")
    (out / "snakepit_bridge" / "_proto").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        dest = pathlib.Path(tmp) / "snakepit_bridge" / "_proto"
        dest.mkdir(parents=True)
        shutil.copy(proto, dest / "snakepit_bridge.proto")
        well_known = pathlib.Path(protoc.__file__).parent / "_proto"
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{tmp}",
                f"-I{well_known}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                str(dest / "snakepit_bridge.proto"),
            ]
        )
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
