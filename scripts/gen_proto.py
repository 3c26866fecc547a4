"""Regenerate tb_plugin_insight/proto/plugin_data_pb2.py from plugin_data.proto.

Run from anywhere: `python scripts/gen_proto.py [--out DIR]`. Needs `grpcio-tools<1.76` (libprotoc 31,
gencode 6.31.1), so the generated module imports under the oldest protobuf pyproject.toml allows. The proto is
compiled with the repository root as include path, which registers it in the global descriptor pool under
the namespaced name `tb_plugin_insight/proto/plugin_data.proto` (no clash with other plugins' protos).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO = "tb_plugin_insight/proto/plugin_data.proto"


def generate(out_dir: pathlib.Path) -> pathlib.Path:
    """Compile the proto into out_dir (mirroring the package path) and return the _pb2 path."""
    from grpc_tools import protoc

    code = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={out_dir}", str(ROOT / PROTO)])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    return out_dir / PROTO.replace(".proto", "_pb2.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT, help="output root (default: repo)")
    args = parser.parse_args()
    path = generate(args.out)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
