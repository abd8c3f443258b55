"""Talking to a broker below any client: the ApiVersions probe and the default partitioner's hash."""
