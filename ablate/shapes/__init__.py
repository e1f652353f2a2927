"""The shapes world: a plug-in of scenes, questions, training files, benchmark writers, tiny components,
their tokenizer, tiny pretraining and the laptop demo, on top of the core (models, data, train, eval)."""
