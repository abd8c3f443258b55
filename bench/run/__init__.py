"""The run pipeline: prepare (validate everything, no side effects), then execute the cells through a driver."""
