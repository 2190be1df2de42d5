"""`/api/...`: the REST API of seed 001 (the heihei app), one module per section of the seed."""
