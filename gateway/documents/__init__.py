"""A business document and its Peppol envelope (SBDH): read once at the edge into typed objects,
stored once by content."""
