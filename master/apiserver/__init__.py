"""The API server: gRPC service, registry strategies and etcd storage."""
