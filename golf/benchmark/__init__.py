"""golf.bench's parts: timing of training, evaluation and TTT against the machine's measured peak."""
