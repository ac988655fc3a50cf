"""Example agency integrations built on the ``hub.client`` SDK."""
