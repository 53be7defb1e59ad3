"""Operations: service health, alerts and freshness expectations of the pipeline's assets."""
