"""Generated from protos/kubelite/v1 by hack/gen-protos.sh; do not edit."""
