"""Fine-tuning jobs: local CPU training and remote OpenAI-compatible jobs APIs."""
