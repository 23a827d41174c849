"""ingest: bridges Redis streams into NATS JetStream (design §1).

``ingest.service.run`` is the entry point; ``ingest.service.Ingest`` runs in-process for tests.
"""
