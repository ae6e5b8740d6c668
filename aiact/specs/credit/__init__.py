"""Credit-scoring reference use case (AI Act Annex III 5(b))."""
