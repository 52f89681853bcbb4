"""The kafka-failover Kubernetes operator: runs gateways for KafkaFailovers and switches them."""
