"""Kafka runtime: the exactly-once batch consumer, dead letters, topic admin."""
