"""The Avro contracts with channel systems and sales tools, and the one codec that reads them."""
