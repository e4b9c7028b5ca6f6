"""pgg's terminal app (`pgg-tui`) and command line (`pgg`). Reads the store; never imports training code."""
