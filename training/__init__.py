"""Training programs for the FastSlow models: data generation, training, evaluation and export."""
