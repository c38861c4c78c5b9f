"""The journey engine's domain: touchpoints, customer journey streams, the journey definition."""
