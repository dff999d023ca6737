"""The gRPC service's protocol (`hispeed.proto`) and its generated modules (scripts/gen-proto)."""
