"""The pod network of a node: node/network/pod_network.py puts the parts
together (ipam.py, plumbing.py, backends.py, masq.py)."""
