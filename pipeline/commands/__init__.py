"""One module per `simsiam-tfx` subcommand: HELP, add_arguments(parser), run(args) -> int."""
