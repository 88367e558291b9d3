"""Features, labels, training, validation and the model artifact format. Never imports actors."""
