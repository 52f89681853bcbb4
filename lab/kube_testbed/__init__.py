"""A real Kubernetes control plane for tests, without Docker: etcd, kube-apiserver and
kube-controller-manager built from the Go module proxy and run as local processes.

``building`` compiles the pinned binaries once into ``~/.cache/kafka-failover/k8s/<version>/bin``;
``control_plane`` starts and stops them on 127.0.0.1; ``pytest_plugin`` offers the fixture.
"""
