"""pgg's engine: training, the experiment store and the scheduler.

Importing `engine` is cheap on purpose: torch and transformers load only inside the training modules.
"""

__version__ = "0.1.0"
