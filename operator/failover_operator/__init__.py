"""The kafka-failover Kubernetes operator: runs gateways for KafkaFailover objects and switches them."""
