from pgg_tui.cli import main

main()
