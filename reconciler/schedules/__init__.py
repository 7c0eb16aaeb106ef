"""Schedule specifications: parsing what people write, converting to Celery's objects."""
