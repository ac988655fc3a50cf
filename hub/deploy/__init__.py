"""Deployment artefacts derived from the protocol: Kafka ACLs, topics, Strimzi resources."""
