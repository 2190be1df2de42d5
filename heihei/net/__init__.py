"""The network layer: batched socket writes and the hardened WebSocket plumbing every realm shares."""
