"""Statistics over runs: comparing a pre-trained and an instruction-tuned model."""
