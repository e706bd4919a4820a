"""Generated gRPC stubs of the bridge protocol (never edit by hand; run `cargo xtask codegen`).

The stubs are generated for protobuf 5 and run on protobuf 5 and 6 alike (protobuf supports
gencode one major version older than its runtime); the notice protobuf 6 prints about that
is silenced here, for these stubs only.
"""

import warnings

warnings.filterwarnings(
    "ignore",
    message=r"Protobuf gencode version 5\.\d+\.\d+ is exactly one major version older than the runtime version 6\..* at snakepit_bridge/_proto/",
    category=UserWarning,
)
