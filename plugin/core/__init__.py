"""The pure core: the normalised engagement model, the engine and messages. No I/O here."""
